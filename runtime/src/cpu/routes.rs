//! How the CPU's linear op routes a product: a small table of named strategies, tried in order, each applying
//! to some shapes and encodings ([`ROUTES`]); `Cpu::linear` runs the first that applies. Every threshold the
//! choice uses is here, with the measurement behind it.

use crate::cpu::rows::PARALLEL_WORK;

/// Rows per tile of [`Route::RowTiles`].
pub(crate) const ROW_TILE: usize = 64;

/// From this many activation rows on, dense non-integer linear layers pack their weights per call; below, they
/// transpose the activations instead ([`Route::ActivationPanels`]). Measured on MiniLM FP32 (Sapphire Rapids,
/// 2 threads): at 256 rows (batch 2 × 128) packing the weights took 31 ms against 26 ms, at 512 rows 49 ms
/// against 52 ms, at 4,096 rows 401 ms against 475 ms.
pub(crate) const PACK_ROWS: usize = 512;

/// From this many activation rows on (and below [`PACK_ROWS`]), dense non-integer linear layers transpose the
/// activations instead of the weights: a 16-row panel is the narrowest the packed GEMM fills.
pub(crate) const ACTIVATION_PANEL_ROWS: usize = 16;

/// What the choice looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinearShape {
    /// Activation rows.
    pub m: usize,
    /// Weight rows (outputs per activation row).
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// MXINT8 activations against dense MXINT8 weights: exact integer block products.
    pub integer_mxint8: bool,
    /// The weight rows are decoded (or read) as dense f32 rows: neither the fixed-point i8 path nor the
    /// sparse gather.
    pub dense_decoded: bool,
}

/// A way to compute the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// MXINT8 × MXINT8 with exact integer block sums (panels where the table has a panel kernel, else row kernels).
    IntegerMxint8,
    /// One activation row against a small matrix (MLPs run per sample): each output straight from its
    /// weight row, no grouping or transposition.
    SingleRow,
    /// Short rows (`k <= 64`, small MLPs): the weights transposed once into a packed `[k, n]` panel and rows
    /// multiplied by broadcasting (dot products that short would be mostly horizontal sums).
    PackedSmallK,
    /// Many rows: the weights decoded into packed panels, each value reused across a block of rows.
    PackedPanels,
    /// Fewer rows than packing the weights pays for (a sequence at batch 1): each block of up to 64
    /// activation rows transposed into a packed panel (m × k values: cheap), the weight rows multiplied
    /// against it where they lie (or decoded), each tile of outputs transposed into place.
    ActivationPanels,
    /// Many rows of work for the cores on weights the GEMM routes do not take (sparse gathers, fixed-point
    /// codes): tiles of [`ROW_TILE`] activation rows spread over them, each walking all weight rows (so a
    /// tile's activations stay in cache).
    RowTiles,
    /// Otherwise: groups of three weight rows against all activation rows (over the cores when the work
    /// pays), transposed at the end.
    WeightRowGroups,
}

/// A route's condition.
type Applies = fn(&LinearShape) -> bool;

/// The routes in the order they are tried, with their names; the last always applies.
pub(crate) const ROUTES: [(Route, &str, Applies); 7] = [
    (Route::IntegerMxint8, "integer-mxint8", |s| s.integer_mxint8),
    (Route::SingleRow, "single-row", |s| {
        s.m == 1 && s.n * s.k < PARALLEL_WORK
    }),
    (Route::PackedSmallK, "packed-small-k", |s| {
        s.dense_decoded && s.k <= 64 && s.m >= 4
    }),
    (Route::PackedPanels, "packed-panels", |s| {
        s.dense_decoded && s.m >= PACK_ROWS
    }),
    (Route::ActivationPanels, "activation-panels", |s| {
        s.dense_decoded && s.m >= ACTIVATION_PANEL_ROWS
    }),
    (Route::RowTiles, "row-tiles", |s| {
        s.parallel() && s.m >= 2 * ROW_TILE
    }),
    (Route::WeightRowGroups, "weight-row-groups", |_| true),
];

impl LinearShape {
    /// Enough multiply-adds to spread over the cores.
    pub fn parallel(&self) -> bool {
        self.n * self.m * self.k >= PARALLEL_WORK
    }

    /// The first route of [`ROUTES`] that applies.
    pub fn route(&self) -> Route {
        ROUTES
            .iter()
            .find(|(_, _, applies)| applies(self))
            .map_or(Route::WeightRowGroups, |r| r.0)
    }
}

/// How one weight row meets the activation rows on the routes that go row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKernel {
    /// Fixed point of both widths <= 8: i8 codes, exact i32 dot products, one scale at the end.
    FixedI8,
    /// Really sparse weights (under 30 % stored): the stored entries only, gathered.
    SparseGather,
    /// Fewer than four activation rows against dense MXINT8: the codes decoded in registers.
    Mxint8InRegisters,
    /// A dense f32 row, read in place or decoded once.
    DenseRow,
}

impl RowKernel {
    /// The row kernel for `m` activation rows; `fixed_i8`/`sparse_gather` as the linear op decided them,
    /// `mxint8_dense` when the weight is dense MXINT8.
    pub fn choose(fixed_i8: bool, sparse_gather: bool, m: usize, mxint8_dense: bool) -> RowKernel {
        if fixed_i8 {
            RowKernel::FixedI8
        } else if sparse_gather {
            RowKernel::SparseGather
        } else if m < 4 && mxint8_dense {
            RowKernel::Mxint8InRegisters
        } else {
            RowKernel::DenseRow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(m: usize, n: usize, k: usize) -> LinearShape {
        LinearShape {
            m,
            n,
            k,
            integer_mxint8: false,
            dense_decoded: true,
        }
    }

    #[test]
    fn each_route_is_chosen_where_its_measurements_put_it() {
        let integer = LinearShape {
            integer_mxint8: true,
            ..shape(1, 384, 384)
        };
        assert_eq!(integer.route(), Route::IntegerMxint8);
        // A JSC sample: 1 row, 64 x 16 weights.
        assert_eq!(shape(1, 64, 16).route(), Route::SingleRow);
        // One row of a MiniLM layer is too much work for the single-row route (384 * 384 >= 2^16).
        assert_eq!(shape(1, 384, 384).route(), Route::WeightRowGroups);
        // A JSC batch: short rows.
        assert_eq!(shape(1024, 64, 16).route(), Route::PackedSmallK);
        assert_eq!(shape(3, 64, 16).route(), Route::WeightRowGroups);
        // MiniLM: packing the weights pays from 512 rows on; from 16 rows up to there the activations are
        // transposed instead; below 16 rows, groups of weight rows.
        assert_eq!(shape(512, 1536, 384).route(), Route::PackedPanels);
        assert_eq!(shape(511, 1536, 384).route(), Route::ActivationPanels);
        assert_eq!(shape(128, 1536, 384).route(), Route::ActivationPanels);
        assert_eq!(shape(16, 1536, 384).route(), Route::ActivationPanels);
        assert_eq!(shape(15, 1536, 384).route(), Route::WeightRowGroups);
        // Sparse or fixed-point weights are never packed.
        let sparse = LinearShape {
            dense_decoded: false,
            ..shape(512, 1536, 384)
        };
        assert_eq!(sparse.route(), Route::RowTiles);
        assert_eq!(
            LinearShape {
                dense_decoded: false,
                ..shape(8, 64, 16)
            }
            .route(),
            Route::WeightRowGroups
        );
    }

    #[test]
    fn the_last_route_always_applies_and_names_are_distinct() {
        let names: std::collections::BTreeSet<&str> = ROUTES.iter().map(|r| r.1).collect();
        assert_eq!(names.len(), ROUTES.len());
        assert!((ROUTES[ROUTES.len() - 1].2)(&shape(0, 0, 0)));
    }

    #[test]
    fn row_kernels_in_order_of_precedence() {
        assert_eq!(RowKernel::choose(true, true, 1, true), RowKernel::FixedI8);
        assert_eq!(
            RowKernel::choose(false, true, 1, true),
            RowKernel::SparseGather
        );
        assert_eq!(
            RowKernel::choose(false, false, 3, true),
            RowKernel::Mxint8InRegisters
        );
        assert_eq!(
            RowKernel::choose(false, false, 4, true),
            RowKernel::DenseRow
        );
        assert_eq!(
            RowKernel::choose(false, false, 1, false),
            RowKernel::DenseRow
        );
    }
}
