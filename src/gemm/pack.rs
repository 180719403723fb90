//! Packing of A and B blocks into the micro-panel layouts of the tile
//! kernels, widening f16 and bf16 inputs to f32 on the way.
//!
//! bf16 × bf16 blocks on CPUs with AVX512_BF16 are instead packed as depth
//! pairs for the `vdpbf16ps` tile kernel (`pack_bf16_pairs`).

use crate::dtype::Dtype;
use half::{bf16, f16};

/// A read-only strided matrix operand of any input dtype: element (i, j)
/// is the `Dtype` value at element offset `i * rs + j * cs` from `ptr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub ptr: *const u8,
    pub dtype: Dtype,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: an operand is only read, and the caller of the driver keeps the
// matrix alive and unmodified for the whole call.
unsafe impl Send for Operand {}
// SAFETY: as above.
unsafe impl Sync for Operand {}

impl Operand {
    /// Returns the transposed view: element (i, j) of the result is (j, i)
    /// of self.
    pub fn t(self) -> Operand {
        Operand { rs: self.cs, cs: self.rs, ..self }
    }

    /// Returns the view whose (0, 0) is element (i, j) of self.
    ///
    /// # Safety
    ///
    /// Element (i, j) lies inside the matrix.
    pub unsafe fn at(self, i: usize, j: usize) -> Operand {
        let offset = (i as isize * self.rs + j as isize * self.cs) * self.dtype.size() as isize;
        // SAFETY: the caller guarantees the element is inside the matrix.
        Operand { ptr: unsafe { self.ptr.offset(offset) }, ..self }
    }
}

/// An element type that widens to f32 exactly.
pub(crate) trait Widen: Copy {
    fn widen(self) -> f32;
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Widen for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

impl Widen for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// Copies the `rows × cols` block of `src` into `dst` so that element
/// (i, j) lands at `dst[(i / w) * w * cols + j * w + i % w]`: panels of
/// `w` rows, each stored column by column. Rows past `rows` in the last
/// panel are zero. This is the A micro-panel layout for `w = MR`, and the B
/// layout for the transposed view with `w = NR`.
///
/// # Safety
///
/// Every element of the block is readable; `dst` holds
/// `rows.div_ceil(w) * w * cols` floats.
unsafe fn pack_typed<T: Widen>(src: Operand, rows: usize, cols: usize, w: usize, dst: &mut [f32]) {
    debug_assert!(dst.len() >= rows.div_ceil(w) * w * cols);
    let p = src.ptr.cast::<T>();
    let get = |i: usize, j: usize| {
        // SAFETY: i < rows and j < cols, inside the block.
        unsafe { p.offset(i as isize * src.rs + j as isize * src.cs).read_unaligned().widen() }
    };
    for (panel, chunk) in dst.chunks_mut(w * cols).take(rows.div_ceil(w)).enumerate() {
        let i0 = panel * w;
        let h = (rows - i0).min(w);
        if src.rs == 1 && h == w {
            // Rows are contiguous: each column of the panel is a run.
            for j in 0..cols {
                for (r, slot) in chunk[j * w..(j + 1) * w].iter_mut().enumerate() {
                    *slot = get(i0 + r, j);
                }
            }
            continue;
        }
        if src.cs == 1 {
            // SAFETY: rows i0 .. i0 + h of the block are readable, each
            // contiguous over its `cols` columns.
            unsafe { pack_panel_transposed::<T>(p.offset(i0 as isize * src.rs), src.rs, h, cols, w, chunk) };
            continue;
        }
        for j in 0..cols {
            let col = &mut chunk[j * w..(j + 1) * w];
            for (r, slot) in col.iter_mut().enumerate() {
                *slot = if r < h { get(i0 + r, j) } else { 0.0 };
            }
        }
    }
}

/// Columns per step of [`pack_panel_transposed`]: eight contiguous values
/// of each source row, which the compiler loads as one vector.
const TRANSPOSE_COLS: usize = 8;

/// Packs one panel of `h <= w` rows whose columns are contiguous (row r at
/// `src + r·rs`, column stride 1): `dst[j·w + r]` gets element (r, j), and
/// rows `h .. w` get zeros. The columns go in steps of
/// [`TRANSPOSE_COLS`], so each source row is read in short contiguous runs
/// while the panel's `w` rows stay in L1.
///
/// # Safety
///
/// `src.offset(r·rs + j)` is readable for `r < h`, `j < cols`, and `dst`
/// has room for `w · cols` floats.
#[inline(always)]
unsafe fn pack_panel_transposed<T: Widen>(src: *const T, rs: isize, h: usize, cols: usize, w: usize, dst: &mut [f32]) {
    debug_assert!(h <= w && dst.len() >= w * cols);
    let full = cols / TRANSPOSE_COLS * TRANSPOSE_COLS;
    for j0 in (0..full).step_by(TRANSPOSE_COLS) {
        let block = &mut dst[j0 * w..(j0 + TRANSPOSE_COLS) * w];
        for r in 0..h {
            // SAFETY: columns j0 .. j0 + 8 of row r are inside the block.
            let run = unsafe { src.offset(r as isize * rs).add(j0).cast::<[T; TRANSPOSE_COLS]>().read_unaligned() };
            for (c, v) in run.into_iter().enumerate() {
                block[c * w + r] = v.widen();
            }
        }
        for c in 0..TRANSPOSE_COLS {
            block[c * w + h..(c + 1) * w].fill(0.0);
        }
    }
    for j in full..cols {
        let col = &mut dst[j * w..(j + 1) * w];
        for (r, slot) in col.iter_mut().enumerate() {
            // SAFETY: column j of row r is inside the block.
            *slot = if r < h { unsafe { src.offset(r as isize * rs).add(j).read_unaligned().widen() } } else { 0.0 };
        }
    }
}

/// Packs a `rows × cols` block of any dtype; see `pack_typed`.
///
/// # Safety
///
/// As for `pack_typed`.
pub(crate) unsafe fn pack(src: Operand, rows: usize, cols: usize, w: usize, dst: &mut [f32]) {
    // SAFETY: forwarded contract; the dtype selects how elements are read.
    unsafe {
        match src.dtype {
            Dtype::F32 => pack_typed::<f32>(src, rows, cols, w, dst),
            Dtype::F16 => pack_typed::<f16>(src, rows, cols, w, dst),
            Dtype::Bf16 => pack_typed::<bf16>(src, rows, cols, w, dst),
        }
    }
}

/// Copies the `rows × cols` block of `src` row-major and dense into `dst`
/// (`dst[i * cols + j]`), widening to f32.
///
/// # Safety
///
/// Every element of the block is readable; `dst` holds `rows * cols` floats.
pub(crate) unsafe fn copy_dense(src: Operand, rows: usize, cols: usize, dst: &mut [f32]) {
    // A row-major dense copy is a panel packing with one panel of height 1
    // per row: element (i, j) lands at i * cols + j.
    // SAFETY: forwarded contract.
    unsafe { pack(src, rows, cols, 1, dst) }
}

/// Copies the `rows × cols` block of a bf16 `src` into `dst` as depth pairs
/// for the AVX512_BF16 tile: element (i, 2q + t) lands at
/// `dst[(i / w) * w * 2 * pairs + q * 2 * w + (i % w) * 2 + t]`, where
/// `pairs = cols.div_ceil(2)`. Rows past `rows` and the odd column past
/// `cols` are zero. This is the A layout for `w = MR`, and the B layout for
/// the transposed view with `w = NR`.
///
/// # Safety
///
/// `src` is bf16 and every element of the block is readable; `dst` holds
/// `rows.div_ceil(w) * w * 2 * cols.div_ceil(2)` values. On x86-64 the CPU
/// runs AVX-512 F/BW, as every CPU with the AVX512_BF16 tile does: full
/// panels of the 12 × 32 tile's A and B are packed with AVX-512 shuffles.
pub(crate) unsafe fn pack_bf16_pairs(src: Operand, rows: usize, cols: usize, w: usize, dst: &mut [u16]) {
    debug_assert_eq!(src.dtype, Dtype::Bf16);
    let pairs = cols.div_ceil(2);
    debug_assert!(dst.len() >= rows.div_ceil(w) * w * 2 * pairs);
    let p = src.ptr.cast::<u16>();
    let get = |i: usize, j: usize| {
        // SAFETY: i < rows and j < cols, inside the block.
        unsafe { p.offset(i as isize * src.rs + j as isize * src.cs).read_unaligned() }
    };
    for (panel, chunk) in dst.chunks_mut(w * 2 * pairs).take(rows.div_ceil(w)).enumerate() {
        let i0 = panel * w;
        let h = (rows - i0).min(w);
        let full_pairs = cols / 2;
        #[cfg(target_arch = "x86_64")]
        if src.cs == 1 && h == w && w == 12 && src.rs > 0 {
            // SAFETY: the vdpbf16ps path that packs these panels runs only
            // where AVX-512 F/BW are present; rows i0 .. i0 + 12 contain
            // 2·full_pairs ≤ cols elements each, and the chunk has room for
            // 24·pairs values.
            unsafe {
                let row0 = p.offset(i0 as isize * src.rs);
                mlak_kernels::gemm::avx512::bf16_pack_a_pairs_12_avx512(row0, src.rs as usize, full_pairs, chunk.as_mut_ptr());
                pack_bf16_odd_column(src, i0, h, cols, w, chunk);
            }
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if src.rs == 1 && h == w && w == 32 && src.cs > 0 {
            // SAFETY: as above; columns 2q and 2q + 1 < cols each contain rows
            // i0 .. i0 + 32 contiguously, and the chunk has room for 64·pairs
            // values.
            unsafe {
                let col0 = p.add(i0);
                mlak_kernels::gemm::avx512::bf16_pack_b_pairs_32_avx512(col0, src.cs as usize, full_pairs, chunk.as_mut_ptr());
                pack_bf16_odd_column(src, i0, h, cols, w, chunk);
            }
            continue;
        }
        if src.cs == 1 && h == w {
            // Each row's pairs are adjacent in memory: copy them as 32-bit
            // words, w rows per depth pair.
            for q in 0..full_pairs {
                let run = &mut chunk[q * 2 * w..(q + 1) * 2 * w];
                for r in 0..w {
                    // SAFETY: columns 2q and 2q + 1 < cols of row i0 + r
                    // are inside the block.
                    let word = unsafe { p.offset((i0 + r) as isize * src.rs).add(2 * q).cast::<[u16; 2]>().read_unaligned() };
                    run[r * 2..r * 2 + 2].copy_from_slice(&word);
                }
            }
            // SAFETY: forwarded contract.
            unsafe { pack_bf16_odd_column(src, i0, h, cols, w, chunk) };
            continue;
        }
        if src.rs == 1 && h == w {
            // Rows are contiguous: interleave two runs of w values per pair.
            for q in 0..full_pairs {
                let run = &mut chunk[q * 2 * w..(q + 1) * 2 * w];
                // SAFETY: columns 2q and 2q + 1 < cols hold rows i0 .. i0 + w
                // contiguously, inside the block.
                let (lo, hi) = unsafe {
                    let base = p.add(i0);
                    (
                        std::slice::from_raw_parts(base.offset(2 * q as isize * src.cs), w),
                        std::slice::from_raw_parts(base.offset((2 * q + 1) as isize * src.cs), w),
                    )
                };
                for (r, (&x, &y)) in lo.iter().zip(hi).enumerate() {
                    run[r * 2] = x;
                    run[r * 2 + 1] = y;
                }
            }
            // SAFETY: forwarded contract.
            unsafe { pack_bf16_odd_column(src, i0, h, cols, w, chunk) };
            continue;
        }
        for q in 0..pairs {
            let run = &mut chunk[q * 2 * w..(q + 1) * 2 * w];
            for r in 0..w {
                for t in 0..2 {
                    let j = 2 * q + t;
                    run[r * 2 + t] = if r < h && j < cols { get(i0 + r, j) } else { 0 };
                }
            }
        }
    }
}

/// Fills the last depth pair of a bf16 pair panel when `cols` is odd:
/// column `cols - 1` of rows `i0 .. i0 + h` and a zero partner; rows past
/// `h` are zero.
///
/// # Safety
///
/// As for `pack_bf16_pairs`, for the panel at row `i0`.
unsafe fn pack_bf16_odd_column(src: Operand, i0: usize, h: usize, cols: usize, w: usize, chunk: &mut [u16]) {
    if cols.is_multiple_of(2) {
        return;
    }
    let q = cols / 2;
    let p = src.ptr.cast::<u16>();
    let run = &mut chunk[q * 2 * w..(q + 1) * 2 * w];
    for r in 0..w {
        // SAFETY: column cols - 1 of row i0 + r < i0 + h is inside the block.
        run[r * 2] = if r < h { unsafe { p.offset((i0 + r) as isize * src.rs + (cols - 1) as isize * src.cs).read_unaligned() } } else { 0 };
        run[r * 2 + 1] = 0;
    }
}
