// Embedding gather: out[row, c] += table[index(row), c], decoded in place from the stored table (any
// encoding, weights.wgsl). Word, position and token-type tables are added one after the other into a zeroed
// output; a table split into chunks adds only the rows its chunk holds.

struct Params {
    rows: u32,
    width: u32,
    // 0: the index is ids[row]; 1: the position row % seq
    positions: u32,
    seq: u32,
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> ids: array<u32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * p.grid_width;
    if (i >= p.rows * p.width) {
        return;
    }
    let row = i / p.width;
    let c = i % p.width;
    var index = row % p.seq;
    if (p.positions == 0u) {
        index = ids[row];
    }
    if (index >= wd.row0 && index < wd.row0 + wd.rows) {
        out[i] += w_at(index - wd.row0, c);
    }
}
