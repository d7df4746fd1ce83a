// Weight decoding, prepended to every shader that reads weights as they are stored in the .mxrt file
// (FORMAT.md sections 5 and 6): the element plane as packed u32 words, MX scale bytes, sparse masks and row
// offsets. Nothing is converted to f32 before it reaches the GPU; each element is decoded where it is used.
//
// A weight may be split into chunks of rows (tensors larger than the adapter's storage binding limit); the
// descriptor and planes are those of one chunk and row indices here are chunk-relative.

struct WeightDesc {
    // 0 f32, 1 f16, 2 bf16, 3 MX (table lookup times the block scale), 4 fixed point (code * 2^-F)
    kind: u32,
    // bits per element code in the plane (the container width for fixed point)
    bits: u32,
    cols: u32,
    // codes per stored dense row (MX rows are padded to whole blocks)
    stride: u32,
    blocks_per_row: u32,
    rows: u32,
    // first row of this chunk in the whole tensor
    row0: u32,
    // bit position of the chunk's first element code in `w_elements`
    bit0: u32,
    frac_scale: f32,
    sparse: u32,
    _pad0: u32,
    _pad1: u32,
    // MX: the value of every element code (code c at table[c / 4][c % 4])
    table: array<vec4<f32>, 64>,
}

@group(0) @binding(1) var<uniform> wd: WeightDesc;
@group(0) @binding(2) var<storage, read> w_elements: array<u32>;
@group(0) @binding(3) var<storage, read> w_scales: array<u32>;
@group(0) @binding(4) var<storage, read> w_masks: array<u32>;
@group(0) @binding(5) var<storage, read> w_offsets: array<u32>;

// The k-th element code of the chunk (codes may straddle two words: 6-bit and odd fixed-point widths).
fn w_code(k: u32) -> u32 {
    let bit = wd.bit0 + k * wd.bits;
    let word = bit >> 5u;
    let off = bit & 31u;
    var code = w_elements[word] >> off;
    if (off + wd.bits > 32u) {
        code |= w_elements[word + 1u] << (32u - off);
    }
    if (wd.bits == 32u) {
        return code;
    }
    return code & ((1u << wd.bits) - 1u);
}

// E8M0: 2^(s-127); 255 is NaN; 0 is the subnormal 2^-127.
fn scale_value(s: u32) -> f32 {
    if (s == 255u) {
        return bitcast<f32>(0x7fc00000u);
    }
    if (s == 0u) {
        return bitcast<f32>(0x00400000u);
    }
    return bitcast<f32>(s << 23u);
}

fn sign_extend(code: u32, bits: u32) -> i32 {
    let shift = 32u - bits;
    return bitcast<i32>(code << shift) >> shift;
}

// The value of a code of chunk-relative block `block` (the block matters for MX only).
fn w_value(code: u32, block: u32) -> f32 {
    switch wd.kind {
        case 0u: {
            return bitcast<f32>(code);
        }
        case 1u: {
            return unpack2x16float(code).x;
        }
        case 2u: {
            return bitcast<f32>(code << 16u);
        }
        case 3u: {
            let s = (w_scales[block >> 2u] >> ((block & 3u) * 8u)) & 255u;
            return wd.table[code >> 2u][code & 3u] * scale_value(s);
        }
        default: {
            return f32(sign_extend(code, wd.bits)) * wd.frac_scale;
        }
    }
}

// Element (r, c) of a dense chunk.
fn w_dense(r: u32, c: u32) -> f32 {
    return w_value(w_code(r * wd.stride + c), r * wd.blocks_per_row + (c >> 5u));
}

// Element (r, c) of a sparse chunk: zero unless its mask bit is set; otherwise its index among the row's
// stored codes is the row offset plus the set bits before it.
fn w_sparse(r: u32, c: u32) -> f32 {
    let j = c >> 5u;
    let i = c & 31u;
    let base = r * wd.blocks_per_row;
    let m = w_masks[base + j];
    if (((m >> i) & 1u) == 0u) {
        return 0.0;
    }
    var k = w_offsets[r] + countOneBits(m & ((1u << i) - 1u));
    for (var b = 0u; b < j; b++) {
        k += countOneBits(w_masks[base + b]);
    }
    return w_value(w_code(k), base + j);
}

fn w_at(r: u32, c: u32) -> f32 {
    if (wd.sparse != 0u) {
        return w_sparse(r, c);
    }
    return w_dense(r, c);
}
