//! The layout `_convert_weight_to_int4pack_for_cpu` gives INT4 codes, learnt by probing, so the
//! CPU kernel's packed weights can be turned back into plain codes (for saving, moving to another
//! device, dequantizing, and the many-row fallback) without keeping a second copy.
//!
//! The layout is modelled as blocks of consecutive output rows: a block of `rows` rows starting
//! at row `r0` fills bytes `r0·k/2 .. (r0 + rows)·k/2` as a `[k, rows/2]` array, and the `rows`
//! nibbles of each of its `k` byte-rows hold the codes of column `k` for the block's rows in some
//! fixed order. (That is what libtorch 2.11 does: 64-row blocks with AVX-512, 32 with AVX2,
//! smaller blocks for a remainder.) [`CpuInt4Layout::for_rows`] learns the blocks and orders from
//! a `[n, 2]` probe, checks the model against a scrambled `[n, 64]` round trip, and caches the
//! result per `n`; when anything disagrees it returns `None` and the CPU kernel is not used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tch::{Device, Kind, TchError, Tensor};

use super::nibble_probe;
use crate::error::{Error, Result};

/// Run of equal blocks: `blocks` blocks of `rows` rows each, starting at output row `first_row`.
struct BlockRun {
    first_row: i64,
    blocks: i64,
    rows: i64,
    /// For each row of a block, where its code sits in a byte-row read as all low nibbles
    /// then all high nibbles (`half · rows/2 + byte`).
    source_of_row: Vec<i64>,
}

/// How the CPU INT4 kernel lays out the codes of a weight with a given number of output rows.
pub(crate) struct CpuInt4Layout {
    rows: i64,
    runs: Vec<BlockRun>,
}

/// Packs `u8 [n, k]` codes for the CPU INT4 kernel.
pub(crate) fn pack_for_cpu(codes: &Tensor) -> std::result::Result<Tensor, TchError> {
    codes
        .to_kind(Kind::Int)
        .f_internal_convert_weight_to_int4pack_for_cpu(1)
}

impl CpuInt4Layout {
    /// The layout for `rows` output rows, learnt once per process and row count; `None` when
    /// this libtorch packs in a way the block model does not describe (or cannot pack at all).
    pub fn for_rows(rows: i64) -> Option<Arc<CpuInt4Layout>> {
        static CACHE: OnceLock<Mutex<HashMap<i64, Option<Arc<CpuInt4Layout>>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(found) = cache.lock().expect("layout cache").get(&rows) {
            return found.clone();
        }
        let learnt = match Self::learn(rows) {
            Ok(layout) => Some(Arc::new(layout)),
            Err(e) => {
                tracing::info!(rows, error = %e, "CPU INT4 kernel layout not usable");
                None
            }
        };
        cache
            .lock()
            .expect("layout cache")
            .insert(rows, learnt.clone());
        learnt
    }

    fn learn(rows: i64) -> Result<Self> {
        let mismatch = |what: &str| Error::Quantization(format!("CPU INT4 layout: {what}"));
        let sources = nibble_probe::nibble_sources(&pack_for_cpu, rows, 2, Device::Cpu)?;
        let sources = Vec::<i64>::try_from(&sources).map_err(|e| mismatch(&e.to_string()))?;
        let mut runs: Vec<BlockRun> = Vec::new();
        let mut slot = 0usize;
        while slot < sources.len() {
            let first_row = (slot / 2) as i64;
            // With k = 2 a block is its column-0 nibbles followed by its column-1 nibbles.
            let size = sources[slot..].iter().take_while(|&&s| s % 2 == 0).count();
            if size == 0 || size % 2 != 0 || slot + 2 * size > sources.len() {
                return Err(mismatch("unexpected block boundary"));
            }
            let row_of_nibble: Vec<i64> = sources[slot..slot + size]
                .iter()
                .map(|s| s / 2 - first_row)
                .collect();
            let mut source_of_row = vec![-1i64; size];
            for (nibble, &row) in row_of_nibble.iter().enumerate() {
                if !(0..size as i64).contains(&row) || source_of_row[row as usize] != -1 {
                    return Err(mismatch("a block is not a permutation of its rows"));
                }
                // Nibble `2·byte + half` (low nibble first) of the byte-row.
                let (byte, half) = (nibble / 2, nibble % 2);
                source_of_row[row as usize] = (half * size / 2 + byte) as i64;
            }
            let second_column_matches = sources[slot + size..slot + 2 * size]
                .iter()
                .zip(&row_of_nibble)
                .all(|(s, row)| *s == 2 * (first_row + row) + 1);
            if !second_column_matches {
                return Err(mismatch("columns of a block are ordered differently"));
            }
            match runs.last_mut() {
                Some(run) if run.source_of_row == source_of_row => run.blocks += 1,
                _ => runs.push(BlockRun {
                    first_row,
                    blocks: 1,
                    rows: size as i64,
                    source_of_row,
                }),
            }
            slot += 2 * size;
        }
        let layout = CpuInt4Layout { rows, runs };
        // Scrambled codes from the index (the check must not move the global RNG).
        let codes = (Tensor::arange(rows * 64, (Kind::Int64, Device::Cpu)) * 7919)
            .bitwise_right_shift_tensor_scalar(3)
            .bitwise_and(15)
            .to_kind(Kind::Uint8)
            .view([rows, 64]);
        let packed = pack_for_cpu(&codes).map_err(|e| mismatch(&e.to_string()))?;
        if !layout.unpack(&packed, 64).equal(&codes) {
            return Err(mismatch("the block model does not round-trip"));
        }
        Ok(layout)
    }

    /// Plain `u8 [rows, k]` codes from the kernel's packed `[rows, k/2]` weight.
    ///
    /// Per run: split the nibbles into `[blocks, k, low | high]`, transpose to
    /// `[blocks, rows, k]`, and reorder whole rows (skipped when the order is already right, as
    /// with AVX-512's pairing of row `j` with row `j + 32`).
    pub fn unpack(&self, packed: &Tensor, k: i64) -> Tensor {
        let bytes = packed.contiguous().view([-1]);
        let parts: Vec<Tensor> = self
            .runs
            .iter()
            .map(|run| {
                let chunk = bytes
                    .narrow(0, run.first_row * k / 2, run.blocks * run.rows * k / 2)
                    .view([run.blocks, k, run.rows / 2]);
                let halves = Tensor::cat(
                    &[
                        chunk.bitwise_and(15),
                        chunk.bitwise_right_shift_tensor_scalar(4),
                    ],
                    2,
                );
                let by_source = halves.transpose(1, 2).contiguous();
                let in_order = run
                    .source_of_row
                    .iter()
                    .enumerate()
                    .all(|(r, &s)| s == r as i64);
                let rows = if in_order {
                    by_source
                } else {
                    by_source.index_select(1, &Tensor::from_slice(&run.source_of_row))
                };
                rows.view([run.blocks * run.rows, k])
            })
            .collect();
        let codes = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(&parts, 0)
        };
        debug_assert_eq!(codes.size(), [self.rows, k]);
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_layout_unpacks_the_kernel_packing() {
        tch::set_num_threads(1);
        tch::manual_seed(5);
        for rows in [64, 96, 4160] {
            let layout = CpuInt4Layout::for_rows(rows).expect("layout of this libtorch");
            let codes = Tensor::randint(16, [rows, 384], (Kind::Uint8, Device::Cpu));
            let packed = pack_for_cpu(&codes).unwrap();
            assert!(layout.unpack(&packed, 384).equal(&codes), "rows {rows}");
        }
    }
}
