//! The row order of query/key projections under the two RoPE conventions.
//!
//! Hugging Face Llama rotates halves: within a head of `head_dim` rows, row `i` pairs with row
//! `i + head_dim/2`. llama.cpp's `llama` architecture rotates adjacent pairs (rows `2i`, `2i+1`), so its
//! converter reorders the rows of `q_proj` and `k_proj` when writing GGUF:
//! `w.reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2).reshape(out, in)`.
//! Per head that sends Hugging Face row `half·head_dim/2 + i` to GGUF row `2i + half`.

/// Reorders the rows of a GGUF `attn_q`/`attn_k` tensor (`data`, row-major, rows of `row_len`) back to
/// Hugging Face order. `n_head` is the head count of the projection (KV heads for keys).
///
/// `None` when the rows do not split into `n_head` heads of an even size.
pub fn hf_rows_from_gguf<T: Copy>(data: &[T], row_len: usize, n_head: usize) -> Option<Vec<T>> {
    reorder_rows(data, row_len, n_head, |head_dim, hf_row| {
        let half = hf_row / (head_dim / 2);
        let i = hf_row % (head_dim / 2);
        2 * i + half
    })
}

/// The forward direction, Hugging Face → GGUF (what llama.cpp's converter does); the inverse of
/// [`hf_rows_from_gguf`].
#[cfg(test)]
pub fn gguf_rows_from_hf<T: Copy>(data: &[T], row_len: usize, n_head: usize) -> Option<Vec<T>> {
    reorder_rows(data, row_len, n_head, |head_dim, gguf_row| {
        let i = gguf_row / 2;
        let half = gguf_row % 2;
        half * (head_dim / 2) + i
    })
}

/// Builds each head's output row `r` from input row `source_row(head_dim, r)` of the same head.
fn reorder_rows<T: Copy>(
    data: &[T],
    row_len: usize,
    n_head: usize,
    source_row: impl Fn(usize, usize) -> usize,
) -> Option<Vec<T>> {
    if row_len == 0 || n_head == 0 || !data.len().is_multiple_of(row_len) {
        return None;
    }
    let rows = data.len() / row_len;
    if !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return None;
    }
    let head_dim = rows / n_head;
    let mut out = Vec::with_capacity(data.len());
    for head in 0..n_head {
        for row in 0..head_dim {
            let source = head * head_dim + source_row(head_dim, row);
            out.extend_from_slice(&data[source * row_len..(source + 1) * row_len]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undoes_the_interleaving_of_one_head() {
        // head_dim 6: HF rows [0 1 2 | 3 4 5] were stored as pairs (0,3), (1,4), (2,5).
        let gguf = [0, 3, 1, 4, 2, 5];
        assert_eq!(
            hf_rows_from_gguf(&gguf, 1, 1).unwrap(),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(gguf_rows_from_hf(&[0, 1, 2, 3, 4, 5], 1, 1).unwrap(), gguf);
    }

    #[test]
    fn moves_whole_rows_within_each_head() {
        // 2 heads of head_dim 4, rows of 2 values; value = 10·row + column.
        let hf: Vec<u32> = (0..8).flat_map(|r| [10 * r, 10 * r + 1]).collect();
        let gguf = gguf_rows_from_hf(&hf, 2, 2).unwrap();
        let rows: Vec<u32> = gguf.chunks(2).map(|r| r[0] / 10).collect();
        assert_eq!(rows, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(hf_rows_from_gguf(&gguf, 2, 2).unwrap(), hf);
    }

    #[test]
    fn permute_then_unpermute_is_the_identity() {
        // SmolLM2-135M's shapes: q has 9 heads, k 3, head_dim 64, rows of 576.
        for n_head in [9, 3] {
            let data: Vec<u32> = (0..(n_head * 64 * 576) as u32).collect();
            let there = gguf_rows_from_hf(&data, 576, n_head).unwrap();
            assert_ne!(there, data);
            assert_eq!(hf_rows_from_gguf(&there, 576, n_head).unwrap(), data);
        }
    }

    #[test]
    fn rejects_shapes_that_do_not_split_into_heads() {
        assert_eq!(hf_rows_from_gguf(&[0; 6], 1, 4), None);
        assert_eq!(hf_rows_from_gguf(&[0; 6], 1, 2), None); // head_dim 3 is odd
        assert_eq!(hf_rows_from_gguf(&[0; 7], 2, 1), None);
    }
}
