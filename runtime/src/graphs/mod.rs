//! The graphs: the only code that knows a model. Each is written once against the op set ([`crate::ops`]) and
//! lists the parameters it reads, so a backend prepares exactly those (no second walk over a model's fields).

pub mod bert;
pub mod mlp;
pub(crate) mod params;
pub mod scaled;

use crate::ops::Parameters;

pub use bert::Bert;
pub use mlp::Mlp;

/// A model's graph, as the file's description names it.
pub enum Graph {
    Bert(Box<Bert>),
    Mlp(Mlp),
}

impl Graph {
    /// Every weight and small parameter the graph reads, for a backend to prepare.
    pub fn parameters(&self) -> Parameters<'_> {
        match self {
            Graph::Bert(b) => b.parameters(),
            Graph::Mlp(m) => m.parameters(),
        }
    }
}
