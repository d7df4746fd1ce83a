//! include/mxrt.h is what cbindgen generates from src/lib.rs with cbindgen.toml: a changed function that
//! was not re-exported to the header fails here. `MXRT_BLESS_HEADER=1` writes the header instead.

use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads src/lib.rs")
        .write(&mut generated);
    let path = crate_dir.join("include/mxrt.h");
    if std::env::var_os("MXRT_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/mxrt.h is out of date: run `MXRT_BLESS_HEADER=1 cargo test -p mxrt-c --test header` and \
         commit it.\n--- generated ---\n{}",
        String::from_utf8_lossy(&generated)
    );
}
