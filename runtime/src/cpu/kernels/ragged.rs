//! Ragged ends, handled in one place. A SIMD kernel in `avx2.rs` or `avx512.rs` works on whole vectors (or
//! whole MX blocks) only; its table entry says how wide they are, and the types here split each call into
//! that whole part and the values left over, which go through scalar code continuing the kernel's sum (or,
//! for elementwise kernels, through the tier below). The reference kernels are entered whole: they have no
//! vectors and so nothing left over.
//!
//! The split keeps every result bit for bit what the kernels computed when each ran its own tail loop: the
//! leftover products are added to the vector part's sum one by one, in index order, as those loops did.

/// An in-place elementwise kernel (`e^x`, GELU).
#[derive(Clone, Copy)]
pub struct Elementwise {
    /// Values per vector of `body`; `None`: `body` takes any length (the reference, or a masked kernel).
    lanes: Option<usize>,
    /// Runs on the longest prefix made of whole vectors.
    body: fn(&mut [f32]),
    /// Runs on the values after that prefix (fewer than `lanes`).
    rest: fn(&mut [f32]),
}

impl Elementwise {
    /// A kernel that takes any length itself.
    pub const fn whole(kernel: fn(&mut [f32])) -> Elementwise {
        Elementwise {
            lanes: None,
            body: kernel,
            rest: kernel,
        }
    }

    /// `body` on whole vectors of `lanes` values, `rest` on what is left.
    pub const fn vectors(lanes: usize, body: fn(&mut [f32]), rest: fn(&mut [f32])) -> Elementwise {
        Elementwise {
            lanes: Some(lanes),
            body,
            rest,
        }
    }

    pub fn apply(&self, x: &mut [f32]) {
        let Some(lanes) = self.lanes else {
            return (self.body)(x);
        };
        let whole = x.len() - x.len() % lanes;
        let (vectors, rest) = x.split_at_mut(whole);
        (self.body)(vectors);
        if !rest.is_empty() {
            (self.rest)(rest);
        }
    }
}

/// A dot product of two slices (`T` the element, `S` the sum), over their common length.
pub struct Dot<T, S> {
    /// Elements per step of `body`; `None`: `body` takes any length.
    lanes: Option<usize>,
    /// The dot product of two slices of equal length, a multiple of `lanes`.
    body: fn(&[T], &[T]) -> S,
}

// Derived `Clone`/`Copy` would ask `T: Copy, S: Copy` of the (pointer-only) fields' parameters too.
impl<T, S> Clone for Dot<T, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, S> Copy for Dot<T, S> {}

impl<T, S> Dot<T, S> {
    pub const fn whole(kernel: fn(&[T], &[T]) -> S) -> Dot<T, S> {
        Dot {
            lanes: None,
            body: kernel,
        }
    }

    pub const fn vectors(lanes: usize, body: fn(&[T], &[T]) -> S) -> Dot<T, S> {
        Dot {
            lanes: Some(lanes),
            body,
        }
    }

    /// The body's sum over whole steps, then `add(sum, a[k], b[k])` for each leftover index in order.
    fn apply(&self, a: &[T], b: &[T], add: impl Fn(S, &T, &T) -> S) -> S {
        let n = a.len().min(b.len());
        let Some(lanes) = self.lanes else {
            return (self.body)(&a[..n], &b[..n]);
        };
        let whole = n - n % lanes;
        let sum = (self.body)(&a[..whole], &b[..whole]);
        a[whole..n]
            .iter()
            .zip(&b[whole..n])
            .fold(sum, |sum, (x, y)| add(sum, x, y))
    }
}

impl Dot<f32, f32> {
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        self.apply(a, b, |sum, x, y| sum + x * y)
    }
}

impl Dot<u8, i32> {
    /// Bytes read as two's complement i8, summed exactly in i32.
    pub fn dot(&self, a: &[u8], b: &[u8]) -> i32 {
        self.apply(a, b, |sum, &x, &y| {
            sum + i32::from(x as i8) * i32::from(y as i8)
        })
    }
}

/// A sparse weight row (values, column indices) · a dense activation row.
#[derive(Clone, Copy)]
pub struct SparseDot {
    /// Stored entries per step of `body`; `None`: `body` takes any length.
    lanes: Option<usize>,
    body: fn(&[f32], &[u32], &[f32]) -> f32,
}

impl SparseDot {
    pub const fn whole(kernel: fn(&[f32], &[u32], &[f32]) -> f32) -> SparseDot {
        SparseDot {
            lanes: None,
            body: kernel,
        }
    }

    pub const fn vectors(lanes: usize, body: fn(&[f32], &[u32], &[f32]) -> f32) -> SparseDot {
        SparseDot {
            lanes: Some(lanes),
            body,
        }
    }

    /// A column index past `x` panics: the reference by indexing, a SIMD table with "sparse column out of
    /// range" (its body checks its columns before gathering, this its leftover ones).
    pub fn dot(&self, values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
        let n = values.len().min(cols.len());
        let Some(lanes) = self.lanes else {
            return (self.body)(&values[..n], &cols[..n], x);
        };
        let whole = n - n % lanes;
        let (values, rest_values) = values[..n].split_at(whole);
        let (cols, rest_cols) = cols[..n].split_at(whole);
        assert!(
            rest_cols.iter().all(|&c| (c as usize) < x.len()),
            "sparse column out of range"
        );
        let sum = (self.body)(values, cols, x);
        rest_values
            .iter()
            .zip(rest_cols)
            .fold(sum, |sum, (v, &c)| sum + v * x[c as usize])
    }
}

/// One dense MXINT8 weight row (codes, per-block steps) · f32 activations (`reference::mxint8_dot_f32`).
#[derive(Clone, Copy)]
pub struct MxDot {
    /// `false`: `body` takes any input (the reference).
    whole_blocks_only: bool,
    /// Over whole blocks of 32: `codes` and `x` hold exactly `32 * steps.len()` values.
    body: fn(&[u8], &[f32], &[f32]) -> f32,
}

impl MxDot {
    pub const fn whole(kernel: fn(&[u8], &[f32], &[f32]) -> f32) -> MxDot {
        MxDot {
            whole_blocks_only: false,
            body: kernel,
        }
    }

    pub const fn blocks(body: fn(&[u8], &[f32], &[f32]) -> f32) -> MxDot {
        MxDot {
            whole_blocks_only: true,
            body,
        }
    }

    /// The blocks `x` covers whole go through the body; a ragged last block (`x` may end inside it) and any
    /// blocks past `x` through the reference, added to the body's sum.
    pub fn dot(&self, codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
        if !self.whole_blocks_only {
            return (self.body)(codes, steps, x);
        }
        assert!(
            codes.len() >= 32 * steps.len(),
            "MXINT8 row: {} codes for {} blocks",
            codes.len(),
            steps.len()
        );
        let whole = (x.len() / 32).min(steps.len());
        let (codes, rest_codes) = codes.split_at(32 * whole);
        let (x, rest_x) = x.split_at(32 * whole);
        let (steps, rest_steps) = steps.split_at(whole);
        (self.body)(codes, steps, x)
            + super::reference::mxint8_dot_f32(rest_codes, rest_steps, rest_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stand-in bodies that record the lengths they were given (a kernel given a ragged length is a bug).
    fn double(x: &mut [f32]) {
        assert_eq!(x.len() % 4, 0, "body given a ragged slice");
        x.iter_mut().for_each(|v| *v *= 2.0);
    }
    fn negate(x: &mut [f32]) {
        assert!(x.len() < 4);
        x.iter_mut().for_each(|v| *v = -*v);
    }

    #[test]
    fn elementwise_gives_the_body_whole_vectors_and_the_rest_the_tail() {
        let mut x: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        Elementwise::vectors(4, double, negate).apply(&mut x);
        assert_eq!(x, [2., 4., 6., 8., 10., 12., 14., 16., -9., -10.]);
        let mut y = [1.0f32, 2.0, 3.0];
        Elementwise::whole(|x| x.iter_mut().for_each(|v| *v += 1.0)).apply(&mut y);
        assert_eq!(y, [2.0, 3.0, 4.0]);
    }

    fn pairwise_by_fours(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len() % 4, 0, "body given a ragged slice");
        // A different order than the tail's, so the test sees which part summed what.
        a.chunks(4)
            .zip(b.chunks(4))
            .map(|(x, y)| (x[0] * y[0] + x[1] * y[1]) + (x[2] * y[2] + x[3] * y[3]))
            .sum()
    }

    #[test]
    fn dot_adds_the_leftover_products_in_order_after_the_body() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 1e8];
        let b = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        // body: 10; then (10 + 5) + 6, then + 1e8 in f32.
        let expected = ((10.0f32 + 5.0) + 6.0) + 1e8;
        assert_eq!(Dot::vectors(4, pairwise_by_fours).dot(&a, &b), expected);
        // Longer b: only the common length counts.
        assert_eq!(Dot::vectors(4, pairwise_by_fours).dot(&a[..5], &b), 15.0);
        let bytes = Dot::<u8, i32>::whole(super::super::reference::dot_i8);
        assert_eq!(bytes.dot(&[0xFF, 2], &[3, 0x80]), -3 - 256);
    }

    #[test]
    fn sparse_dot_checks_the_leftover_columns_too() {
        fn first_four(v: &[f32], c: &[u32], x: &[f32]) -> f32 {
            assert_eq!(v.len() % 4, 0);
            v.iter().zip(c).map(|(v, &c)| v * x[c as usize]).sum()
        }
        let k = SparseDot::vectors(4, first_four);
        let x = [1.0f32, 10.0, 100.0];
        assert_eq!(k.dot(&[1.0; 5], &[0, 1, 2, 0, 2], &x), 212.0);
        let out_of_range = std::panic::catch_unwind(|| k.dot(&[1.0; 5], &[0, 0, 0, 0, 3], &x));
        let message = out_of_range
            .err()
            .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
        assert_eq!(message.as_deref(), Some("sparse column out of range"));
    }

    #[test]
    fn mx_dot_sends_a_ragged_last_block_to_the_reference() {
        fn whole_blocks(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
            assert_eq!((codes.len(), x.len()), (32 * steps.len(), 32 * steps.len()));
            super::super::reference::mxint8_dot_f32(codes, steps, x)
        }
        let codes = [1u8; 64];
        let steps = [0.5f32, 2.0];
        let x = [1.0f32; 40]; // one whole block, then 8 values of the second
        let got = MxDot::blocks(whole_blocks).dot(&codes, &steps, &x);
        assert_eq!(got, 32.0 * 0.5 + 8.0 * 2.0);
        let short_codes =
            std::panic::catch_unwind(|| MxDot::blocks(whole_blocks).dot(&codes[..40], &steps, &x));
        assert!(short_codes.is_err());
    }
}
