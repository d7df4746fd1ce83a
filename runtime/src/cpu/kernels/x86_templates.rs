//! Kernels written once for any x86 vector width and instantiated by the AVX2 (8 lanes) and AVX-512 (16
//! lanes) tiers with their intrinsics: the same operations in the same order, so the two widths differ only
//! where the lanes do (a value's result depends on its lane count, never on a copy drifting apart).

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
/// to [-87.3, 88.7] (results stay normal; below, e^x is under 1.2e-38 and the true value is smaller still).
/// 2^n is built as 2^h · 2^(n-h), h = floor(n/2): n is in [-126, 128] after the clamp, so both factors are
/// normal powers of two (2^n alone would overflow at n = 128).
macro_rules! exp_kernel {
    (
        $name:ident, $features:literal, $v:ty,
        splat: $splat:ident, splat_i: $splat_i:ident, min: $min:ident, max: $max:ident, floor: $floor:path,
        fmadd: $fmadd:ident, fnmadd: $fnmadd:ident, mul: $mul:ident, add: $add:ident, sub: $sub:ident,
        to_int: $to_int:ident, add_i: $add_i:ident, shift_left_23: $shl:path, bits_to_float: $cast:ident
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
            let half = $floor($mul(n, $splat(0.5)));
            let pow = |e: $v| $cast($shl($add_i($to_int(e), $splat_i(127))));
            $mul($mul(p, pow(half)), pow($sub(n, half)))
        }
    };
}
