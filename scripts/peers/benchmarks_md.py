"""Writing one section of BENCHMARKS.md: the scripts that measure something own a "## Title" section each and
replace it (up to the next "## " header) when they run again, leaving the others alone."""
from pathlib import Path


def replace_section(path: Path, title: str, md: str) -> None:
    """Replaces the section whose header starts with `## {title}` by `md` (appended when there is none)."""
    text = path.read_text() if path.exists() else ""
    marker = f"\n## {title}"
    if marker in text:
        head, rest = text.split(marker, 1)
        nxt = rest.find("\n## ")
        text = head + ("\n" + rest[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n\n" + md)
