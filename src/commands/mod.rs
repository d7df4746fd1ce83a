//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod dequantize;
pub mod eval;
pub mod inspect;
pub mod run;
pub mod search;
pub mod serve;
pub mod sweep;
pub mod verify;
