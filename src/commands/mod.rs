//! One module per subcommand.

pub mod convert;
pub mod dequantize;
pub mod inspect;
pub mod verify;
