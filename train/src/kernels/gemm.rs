//! `c = a·b` or `c += a·b` on row-major f32 matrices given as slices with
//! their row and column strides, through the `gemm` crate (Flex's own
//! matmul), on rayon's pool.

/// A matrix view: `rows × cols` values at `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// Row-major `rows × cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows} x {cols} matrix");
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `c = a·b`, or `c += a·b` when `accumulate`; `c` is row-major `a.rows × b.cols`.
pub(crate) fn gemm(c: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions");
    assert_eq!(c.len(), m * n, "the output is {m} x {n}");
    if m == 0 || n == 0 {
        return;
    }
    // Small products gain nothing from threads (Flex's own threshold).
    let parallelism = if m * n * k >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every view's extent lies inside its slice (checked by the
    // asserts above for `c`, and below for `a` and `b`), and `c` does not
    // alias them (it is borrowed mutably).
    unsafe {
        let within = |v: &View<'_>| {
            v.rows == 0
                || v.cols == 0
                || (v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride < v.data.len()
        };
        assert!(within(&a) && within(&b), "a view outside its data");
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
