//! Kernels written once for any x86 vector width and instantiated by the AVX2 (8 lanes) and AVX-512 (16
//! lanes) tiers with their intrinsics: the same operations in the same order, so the two widths differ only
//! where the lanes do (a value's result depends on its lane count, never on a copy drifting apart), and the
//! bounds check the packed GEMM of both widths shares.

/// `$name(x, k, w, out)`: four activation rows × three weight rows, 12 accumulators of `$lanes` lanes, so each
/// loaded vector feeds three or four FMAs; each accumulator's lanes summed by `$hsum`, then the ragged
/// `k % $lanes` in scalar code (see `reference::dot_f32_rows3`).
macro_rules! dot_f32_rows3_kernel {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $load:ident, $fmadd:ident, $hsum:path) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[f32], k: usize, w: [&[f32]; 3], out: &mut [f32]) {
            let rows = out.len() / 3;
            assert!(x.len() >= rows * k && w.iter().all(|r| r.len() >= k));
            let pw = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr()];
            let whole = k - k % $lanes;
            let mut i = 0;
            while i < rows {
                let group = (rows - i).min(4);
                let mut acc = [[$zero(); 3]; 4];
                let px: [*const f32; 4] =
                    std::array::from_fn(|g| x[(i + g.min(group - 1)) * k..].as_ptr());
                let mut j = 0;
                while j < whole {
                    // SAFETY: j + lanes <= whole <= k, and every weight row and activation row (clamped to
                    // the group) holds k values.
                    let wv = unsafe {
                        [
                            $load(pw[0].add(j)),
                            $load(pw[1].add(j)),
                            $load(pw[2].add(j)),
                        ]
                    };
                    for (g, acc) in acc.iter_mut().enumerate().take(group) {
                        // SAFETY: as above: row i + g < rows.
                        let xv = unsafe { $load(px[g].add(j)) };
                        acc[0] = $fmadd(xv, wv[0], acc[0]);
                        acc[1] = $fmadd(xv, wv[1], acc[1]);
                        acc[2] = $fmadd(xv, wv[2], acc[2]);
                    }
                    j += $lanes;
                }
                for (g, acc) in acc.iter().enumerate().take(group) {
                    let xr = &x[(i + g) * k..(i + g + 1) * k];
                    for c in 0..3 {
                        let mut sum = $hsum(acc[c]);
                        for t in whole..k {
                            sum += xr[t] * w[c][t];
                        }
                        out[3 * (i + g) + c] = sum;
                    }
                }
                i += group;
            }
        }
    };
}

/// `$name(x)`: e^x on `$v` lanes (the Cephes expf scheme): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
/// so n ln2 is exact), e^r by a degree-6 polynomial, times 2^n built in the exponent bits. Inputs are clamped
/// to [-87.3, 88.7] (results stay normal; below, e^x is under 1.2e-38 and the true value is smaller still),
/// so n is in [-126, 128]. `$times_pow2(p, n)` is p · 2^n rounded once: each tier's cheapest exact form.
macro_rules! exp_kernel {
    (
        $name:ident, $features:literal, $v:ty,
        splat: $splat:ident, min: $min:ident, max: $max:ident, floor: $floor:path,
        fmadd: $fmadd:ident, fnmadd: $fnmadd:ident, mul: $mul:ident, add: $add:ident,
        times_pow2: $times_pow2:path
    ) => {
        #[target_feature(enable = $features)]
        fn $name(x: $v) -> $v {
            let x = $min($max(x, $splat(-87.3)), $splat(88.7));
            let n = $floor($fmadd(x, $splat(std::f32::consts::LOG2_E), $splat(0.5)));
            let r = $fnmadd(n, $splat(0.693_359_4), x);
            let r = $fnmadd(n, $splat(-2.121_944_4e-4), r);
            let mut p = $splat(1.987_569_1e-4);
            for c in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                0.5,
            ] {
                p = $fmadd(p, r, $splat(c));
            }
            let p = $fmadd($mul(p, r), r, $add(r, $splat(1.0)));
            $times_pow2(p, n)
        }
    };
}

/// `$name(v)`: exact-erf GELU `0.5 v (1 + erf(v / √2))` on `$v` lanes, with
/// erf(z) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^{-z²}, t = 1 / (1 + p|z|) (Abramowitz & Stegun
/// 7.1.26: |error| <= 1.5e-7) and the sign restored for negative z. `$reciprocal` gives t: each tier computes 1/d its cheapest accurate way.
macro_rules! gelu_kernel {
    (
        $name:ident, $features:literal, $v:ty,
        splat: $splat:ident, zero: $zero:ident, mul: $mul:ident, add: $add:ident, sub: $sub:ident,
        fmadd: $fmadd:ident, fnmadd: $fnmadd:ident, and: $and:ident, and_not: $and_not:ident, or: $or:ident,
        exp: $exp:ident, reciprocal: $reciprocal:ident
    ) => {
        #[target_feature(enable = $features)]
        fn $name(v: $v) -> $v {
            let sign_mask = $splat(-0.0);
            let z = $mul(v, $splat(std::f32::consts::FRAC_1_SQRT_2));
            let a = $and_not(sign_mask, z);
            let t = $reciprocal($fmadd(a, $splat(0.327_591_1), $splat(1.0)));
            let mut poly = $splat(1.061_405_4);
            for coef in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
                poly = $fmadd(poly, t, $splat(coef));
            }
            let e = $exp($sub($zero(), $mul(a, a)));
            let erf_abs = $fnmadd($mul(poly, t), e, $splat(1.0));
            let erf = $or(erf_abs, $and(sign_mask, z));
            $mul($mul($splat(0.5), v), $add($splat(1.0), erf))
        }
    };
}

/// `$name(x, rows, k, wt, n, out, ldo)` (contract: `reference::gemm_f32_packed`): tiles of `$rows` activation
/// rows × `$vectors` `$lanes`-wide column vectors, so each loaded panel vector feeds `$rows` FMAs and each
/// broadcast x[i][t] feeds `$vectors` (no horizontal sums). Every tile is a separate monomorphic function
/// (`tile::<R, V>`): the row and vector counts are constants, so its accumulators stay in registers and its
/// loop over t has no branch per row (a runtime row count put a compare and a stack reload beside every
/// FMA pair). Row remainders (`$partial`) get their own smaller tiles; where fewer than `$vectors` vectors
/// of the packed stride are left, they go two or one at a time. Columns past `n` are computed (the packed panel is
/// zero there) and left out by `$store(ptr, width, v)`, which writes the first `width` lanes of `v`. Each
/// output is one FMA chain over t in order, whatever the tile, so every tier gives the same values.
macro_rules! gemm_f32_packed_kernel {
    (
        $name:ident, $features:literal, rows: $rows:literal, partial: [$($partial:literal),*],
        vectors: $vectors:literal, lanes: $lanes:literal,
        zero: $zero:ident, load: $load:ident, splat: $splat:ident, fmadd: $fmadd:ident, store: $store:ident,
        load_first: $load_first:ident, add: $add:ident, max: $max:ident
    ) => {
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
            x: &[f32],
            rows: usize,
            k: usize,
            wt: &[f32],
            n: usize,
            out: &mut [f32],
            ldo: usize,
            epilogue: super::Epilogue<'_>,
        ) {
            /// `R` rows of x from `px` (row stride `ldx`) × `V` vectors of the packed panel from `pw` (row
            /// stride `stride`) over `depth` steps of t, into `po` (row stride `ldo`), storing the first
            /// `cols` columns. With `resume`, the accumulators start from what `po` holds (the same FMA
            /// chains continued: a depth split into passes gives the values of one pass), else from zero.
            /// `finish`: the last pass's epilogue, `(bias of these columns, ReLU)`, applied as it stores
            /// (`None`: not the last pass, or nothing to apply).
            ///
            /// # Safety
            /// x rows `0..R` (`depth` values each), panel rows `0..depth` (`V * lanes` values each) and
            /// out rows `0..R` (`cols` values each) must lie inside their slices; a bias pointer, `cols`
            /// values.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile<const R: usize, const V: usize>(
                px: *const f32,
                ldx: usize,
                depth: usize,
                pw: *const f32,
                stride: usize,
                cols: usize,
                po: *mut f32,
                ldo: usize,
                resume: bool,
                finish: Option<(Option<*const f32>, bool)>,
            ) {
                let mut acc = [[$zero(); V]; R];
                if resume {
                    for (g, acc) in acc.iter_mut().enumerate() {
                        for (v, a) in acc.iter_mut().enumerate() {
                            let col = v * $lanes;
                            if col < cols {
                                // SAFETY: row g < R, columns col .. col + width <= cols (caller's contract).
                                *a = unsafe { $load_first(po.add(g * ldo + col), (cols - col).min($lanes)) };
                            }
                        }
                    }
                }
                for t in 0..depth {
                    let mut w = [$zero(); V];
                    for (v, w) in w.iter_mut().enumerate() {
                        // SAFETY: t < depth and v < V: inside the panel (caller's contract).
                        *w = unsafe { $load(pw.add(t * stride + v * $lanes)) };
                    }
                    for (g, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: g < R and t < depth: inside x (caller's contract).
                        let xb = $splat(unsafe { *px.add(g * ldx + t) });
                        for (a, w) in acc.iter_mut().zip(&w) {
                            *a = $fmadd(xb, *w, *a);
                        }
                    }
                }
                // The epilogue's bias, one vector per column vector of the tile.
                let mut bias = [$zero(); V];
                if let Some((Some(pb), _)) = finish {
                    for (v, b) in bias.iter_mut().enumerate() {
                        let col = v * $lanes;
                        if col < cols {
                            let width = (cols - col).min($lanes);
                            // SAFETY: bias columns col .. col + width <= cols (caller's contract).
                            *b = unsafe {
                                if width == $lanes {
                                    $load(pb.add(col))
                                } else {
                                    $load_first(pb.add(col), width)
                                }
                            };
                        }
                    }
                }
                for (g, acc) in acc.iter().enumerate() {
                    for (v, a) in acc.iter().enumerate() {
                        let col = v * $lanes;
                        if col >= cols {
                            break;
                        }
                        let mut a = *a;
                        if let Some((with_bias, relu)) = finish {
                            if with_bias.is_some() {
                                a = $add(a, bias[v]);
                            }
                            if relu {
                                // `vmaxps` gives its second operand, +0, for NaN and −0: the ReLU.
                                a = $max(a, $zero());
                            }
                        }
                        // SAFETY: row g < R, columns col .. col + width <= cols: inside out (caller's
                        // contract).
                        unsafe { $store(po.add(g * ldo + col), (cols - col).min($lanes), a) };
                    }
                }
            }

            let stride = super::x86_templates::packed_gemm_stride(x, rows, k, wt, n, out, ldo);
            if let Some(b) = epilogue.bias {
                assert!(b.len() >= n, "gemm_f32_packed: {} bias values for {n} columns", b.len());
            }
            let applies = epilogue.bias.is_some() || epilogue.relu;
            // Few rows of x (the activation-panels route: a group of weight rows against a 64-column
            // panel of activations): the depth in passes of 128 steps, so the panel's slice (32 KB) stays
            // in L1 while the row groups pass over it (measured +6 % there; with hundreds of rows, as
            // when the weights are packed, one pass over the whole depth was faster).
            let pass = if rows <= 64 { 128 } else { k.max(1) };
            let (pw, px, po) = (wt.as_ptr(), x.as_ptr(), out.as_mut_ptr());
            let mut t0 = 0;
            loop {
                // At least one pass, so that k = 0 stores zeros.
                let depth = (k - t0).min(pass);
                let mut c0 = 0;
                while c0 < n {
                    // The widest tile the packed stride still holds: all vectors, two (so one row's chains
                    // are not one vector at a time), or one.
                    let vectors = if c0 + $vectors * $lanes <= stride {
                        $vectors
                    } else if c0 + 2 * $lanes <= stride {
                        2
                    } else {
                        1
                    };
                    let cols = (n - c0).min(vectors * $lanes);
                    let mut i = 0;
                    while i < rows {
                        let group = (rows - i).min($rows);
                        // SAFETY: rows i .. i + group <= rows of x (rows * k values), from column t0 for
                        // depth <= k - t0 values; panel rows t0 .. t0 + depth <= k, columns c0 .. c0 + V
                        // lanes <= stride (k * stride values); out rows i .. i + group, columns c0 .. c0 +
                        // cols <= n (inside (rows - 1) * ldo + n values): all checked by packed_gemm_stride.
                        // The offsets below and every tile call stay inside those ranges.
                        let (x0, w0, o0) = unsafe {
                            (px.add(i * k + t0), pw.add(t0 * stride + c0), po.add(i * ldo + c0))
                        };
                        let resume = t0 > 0;
                        let finish = (applies && t0 + depth >= k).then(|| {
                            // SAFETY: columns c0 .. c0 + cols <= n of the bias (checked above).
                            (epilogue.bias.map(|b| unsafe { b.as_ptr().add(c0) }), epilogue.relu)
                        });
                        macro_rules! run {
                            ($v:literal) => {
                                match group {
                                    // SAFETY: the ranges checked above.
                                    $($partial => unsafe {
                                        tile::<$partial, $v>(x0, k, depth, w0, stride, cols, o0, ldo, resume, finish)
                                    },)*
                                    // SAFETY: the ranges checked above.
                                    _ => unsafe {
                                        tile::<$rows, $v>(x0, k, depth, w0, stride, cols, o0, ldo, resume, finish)
                                    },
                                }
                            };
                        }
                        if vectors == $vectors {
                            run!($vectors);
                        } else if vectors == 2 {
                            run!(2);
                        } else {
                            run!(1);
                        }
                        i += group;
                    }
                    c0 += vectors * $lanes;
                }
                t0 += depth;
                if t0 >= k {
                    break;
                }
            }
        }
    };
}

/// The one-row products of a small MLP's sample, `$f32_name(x, k, wt, n, out)` (contract:
/// `reference::gemv_f32_packed`) and `$mx_name(x, k, codes, factors, n, out)` (contract:
/// `reference::gemv_mxint8_packed`), bit for bit: the same four FMA chains per output and the same final
/// additions. Up to four vectors of outputs at a time, each with four accumulators (steps t ≡ 0, 1, 2, 3
/// mod 4), so 16 chains are in flight instead of four. The MXINT8 form decodes each weight in registers
/// (`$load_codes`: `lanes` codes sign-extended to f32, times their block's factors: exactly the decoded f32
/// weight), reading a quarter of the bytes. Columns past `n` are computed (zero there) and left out by
/// `$store(ptr, width, v)`.
macro_rules! gemv_packed_kernels {
    (
        f32: $f32_name:ident, mx: $mx_name:ident, $features:literal, $v:ty, lanes: $lanes:literal,
        zero: $zero:ident, load: $load:ident, splat: $splat:ident, fmadd: $fmadd:ident, add: $add:ident,
        mul: $mul:ident, store: $store:ident, load_codes: $load_codes:ident
    ) => {
        /// Outputs `c0 .. c0 + V · lanes` of one row (the first `n - c0` of them stored), weight vector `v`
        /// of step `t` from `weight(t, v)`.
        ///
        /// # Safety
        /// `px .. px + k` and `po + c0 .. po + n` must lie inside their slices, and `weight` must only read
        /// inside its operands for t < k, v < V.
        #[target_feature(enable = $features)]
        unsafe fn gemv_block<const V: usize, W: Fn(usize, usize) -> $v>(
            px: *const f32,
            k: usize,
            c0: usize,
            po: *mut f32,
            n: usize,
            weight: W,
        ) {
            let mut acc = [[$zero(); V]; 4];
            let step = |acc: &mut [$v; V], t: usize| {
                // SAFETY: t < k: inside x (caller's contract).
                let xb = $splat(unsafe { *px.add(t) });
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = $fmadd(xb, weight(t, v), *a);
                }
            };
            let whole = k - k % 4;
            for t in (0..whole).step_by(4) {
                for (j, chain) in acc.iter_mut().enumerate() {
                    step(chain, t + j);
                }
            }
            for (j, chain) in acc.iter_mut().enumerate().take(k - whole) {
                step(chain, whole + j);
            }
            for v in 0..V {
                let col = c0 + v * $lanes;
                if col >= n {
                    break;
                }
                let sum = $add($add(acc[0][v], acc[1][v]), $add(acc[2][v], acc[3][v]));
                // SAFETY: columns col .. col + width <= n: inside out (caller's contract).
                unsafe { $store(po.add(col), (n - col).min($lanes), sum) };
            }
        }

        /// The vectors of outputs up to the last (inside the packed stride: n rounded up to 16), up to four
        /// at a time: `run(c0, vectors)`.
        fn gemv_columns(n: usize, mut run: impl FnMut(usize, usize)) {
            let mut c0 = 0;
            while c0 < n {
                let vectors = (n - c0).div_ceil($lanes).min(4);
                run(c0, vectors);
                c0 += vectors * $lanes;
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn $f32_name(x: &[f32], k: usize, wt: &[f32], n: usize, out: &mut [f32]) {
            let stride = super::reference::check_gemv_sizes(x, k, wt.len(), n, out);
            let (px, pw, po) = (x.as_ptr(), wt.as_ptr(), out.as_mut_ptr());
            gemv_columns(n, |c0, vectors| {
                let weight = |t: usize, v: usize| {
                    // SAFETY: weight vector v of step t at t · stride + c0 + v · lanes, inside the panel
                    // (t < k, c0 + vectors · lanes <= stride; sizes checked above).
                    unsafe { $load(pw.add(t * stride + c0 + v * $lanes)) }
                };
                // SAFETY: the sizes checked above.
                unsafe {
                    match vectors {
                        4 => gemv_block::<4, _>(px, k, c0, po, n, weight),
                        3 => gemv_block::<3, _>(px, k, c0, po, n, weight),
                        2 => gemv_block::<2, _>(px, k, c0, po, n, weight),
                        _ => gemv_block::<1, _>(px, k, c0, po, n, weight),
                    }
                }
            });
        }

        #[target_feature(enable = $features)]
        unsafe fn $mx_name(
            x: &[f32],
            k: usize,
            codes: &[u8],
            factors: &[f32],
            n: usize,
            out: &mut [f32],
        ) {
            let stride = super::reference::check_gemv_mxint8_sizes(x, k, codes, factors, n, out);
            let (px, pc, pf, po) = (
                x.as_ptr(),
                codes.as_ptr(),
                factors.as_ptr(),
                out.as_mut_ptr(),
            );
            gemv_columns(n, |c0, vectors| {
                let weight = |t: usize, v: usize| {
                    let col = c0 + v * $lanes;
                    // SAFETY: codes t · stride + col .. + lanes and factors (t / 32) · stride + col .. +
                    // lanes lie inside their panels (t < k, col + lanes <= stride; sizes checked above).
                    unsafe {
                        $mul(
                            $load_codes(pc.add(t * stride + col)),
                            $load(pf.add(t / 32 * stride + col)),
                        )
                    }
                };
                // SAFETY: the sizes checked above.
                unsafe {
                    match vectors {
                        4 => gemv_block::<4, _>(px, k, c0, po, n, weight),
                        3 => gemv_block::<3, _>(px, k, c0, po, n, weight),
                        2 => gemv_block::<2, _>(px, k, c0, po, n, weight),
                        _ => gemv_block::<1, _>(px, k, c0, po, n, weight),
                    }
                }
            });
        }
    };
}

/// The packed-weight row stride of a `gemm_f32_packed` call (`n` rounded up to 16), after asserting that every
/// slice holds what the SIMD loops read and write through raw pointers.
pub(super) fn packed_gemm_stride(
    x: &[f32],
    rows: usize,
    k: usize,
    wt: &[f32],
    n: usize,
    out: &[f32],
    ldo: usize,
) -> usize {
    let stride = n.div_ceil(16) * 16;
    assert!(
        x.len() >= rows * k
            && wt.len() >= k * stride
            && ldo >= n
            && (rows == 0 || out.len() >= (rows - 1) * ldo + n)
    );
    stride
}

/// `$name(src, src_ld, rows, cols, dst, dst_ld)` (contract: `reference::transpose_f32`): whole `$lanes` ×
/// `$lanes` blocks as `$lanes` vector loads, an in-register transpose (`$transpose`) and `$lanes` vector
/// stores; the ragged right and bottom strips through the reference.
macro_rules! transpose_f32_kernel {
    ($name:ident, $features:literal, $lanes:literal, $v:ty, load: $load:ident, store: $store:ident,
     transpose: $transpose:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(
            src: &[f32],
            src_ld: usize,
            rows: usize,
            cols: usize,
            dst: &mut [f32],
            dst_ld: usize,
        ) {
            super::reference::check_transpose_sizes(src, src_ld, rows, cols, dst, dst_ld);
            let (whole_rows, whole_cols) = (rows - rows % $lanes, cols - cols % $lanes);
            let (ps, pd) = (src.as_ptr(), dst.as_mut_ptr());
            for r0 in (0..whole_rows).step_by($lanes) {
                for c0 in (0..whole_cols).step_by($lanes) {
                    let block: [$v; $lanes] = std::array::from_fn(|r| {
                        // SAFETY: row r0 + r < rows, columns c0 .. c0 + lanes <= cols: inside src (checked).
                        unsafe { $load(ps.add((r0 + r) * src_ld + c0)) }
                    });
                    for (c, v) in $transpose(&block).iter().enumerate() {
                        // SAFETY: row c0 + c < cols of dst, columns r0 .. r0 + lanes <= rows: inside dst
                        // (checked).
                        unsafe { $store(pd.add((c0 + c) * dst_ld + r0), *v) };
                    }
                }
            }
            if whole_cols < cols && whole_rows > 0 {
                super::reference::transpose_f32(
                    &src[whole_cols..],
                    src_ld,
                    whole_rows,
                    cols - whole_cols,
                    &mut dst[whole_cols * dst_ld..],
                    dst_ld,
                );
            }
            if whole_rows < rows {
                super::reference::transpose_f32(
                    &src[whole_rows * src_ld..],
                    src_ld,
                    rows - whole_rows,
                    cols,
                    &mut dst[whole_rows..],
                    dst_ld,
                );
            }
        }
    };
}
