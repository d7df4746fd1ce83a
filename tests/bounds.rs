//! Sizes from the command line are bounded before anything is allocated: a batch, a sequence count or an
//! iteration count that cannot fit ends in a clear error naming the flag, not an abort or a wrapped number.

mod common;

use common::{convert_quiet, mxrt_err, shared};

#[test]
fn absurd_sizes_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("jsc.mxrt");
    convert_quiet(&shared().join("models/jsc-3layer"), &model, &[]);
    let m = model.to_str().unwrap();
    let e = mxrt_err(&["bench", m, "--batch", "1099511627776"]);
    assert!(
        e.contains("--batch 1099511627776 needs about") && e.contains("available"),
        "{e}"
    );
    let e = mxrt_err(&["bench", m, "--batch", "9223372036854775808"]);
    assert!(e.contains("needs more than 16 EiB"), "{e}");
    let e = mxrt_err(&["bench", m, "--iterations", "1099511627776"]);
    assert!(
        e.contains("--iterations and --warmup are at most 10000000"),
        "{e}"
    );
    let e = mxrt_err(&["eval", m, "--synthetic", "1000000000000"]);
    assert!(e.contains("--synthetic 1000000000000 needs about"), "{e}");
    let e = mxrt_err(&["bench", "--kernels", "--batch", "1099511627776"]);
    assert!(e.contains("--kernels with --batch 1099511627776"), "{e}");
}
