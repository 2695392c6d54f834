//! Rotary position embeddings in Hugging Face's rotate-half layout, with the checkpoint's scaling.

use tch::{Device, Kind, Tensor};

use super::config::{LlamaConfig, RopeScaling};

/// Per-position cos/sin tables, `[positions, head_dim]` each.
pub(super) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

/// The inverse frequencies `1 / theta^(2i/d)` after the checkpoint's scaling.
pub(super) fn inverse_frequencies(config: &LlamaConfig) -> Vec<f64> {
    let d = config.head_dim as f64;
    let base: Vec<f64> = (0..config.head_dim / 2)
        .map(|i| 1.0 / config.rope_theta.powf(2.0 * i as f64 / d))
        .collect();
    match config.rope_scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: original,
        } => {
            let low_wavelen = original / low_freq_factor;
            let high_wavelen = original / high_freq_factor;
            base.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (original / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

impl Rope {
    /// Tables for positions `0..positions` in `kind` on `device`.
    pub(super) fn new(config: &LlamaConfig, positions: i64, kind: Kind, device: Device) -> Self {
        let freqs = inverse_frequencies(config);
        let half = freqs.len();
        let mut cos = Vec::with_capacity(positions as usize * half * 2);
        let mut sin = Vec::with_capacity(positions as usize * half * 2);
        for p in 0..positions {
            for _ in 0..2 {
                for f in &freqs {
                    let angle = p as f64 * f;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let table = |v: Vec<f32>| {
            Tensor::from_slice(&v)
                .view([positions, 2 * half as i64])
                .to_kind(kind)
                .to_device(device)
        };
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// Rotates `x` (`[batch, heads, tokens, head_dim]`) for `positions` (`[batch, tokens]`).
    pub(super) fn apply(&self, x: &Tensor, positions: &Tensor) -> Tensor {
        let (b, t) = (positions.size()[0], positions.size()[1]);
        let flat = positions.reshape([-1]);
        let d = self.cos.size()[1];
        let cos = self.cos.index_select(0, &flat).view([b, 1, t, d]);
        let sin = self.sin.index_select(0, &flat).view([b, 1, t, d]);
        let half = d / 2;
        let x1 = x.narrow(-1, 0, half);
        let x2 = x.narrow(-1, half, half);
        let rotated = Tensor::cat(&[x2.neg(), x1], -1);
        x * cos + rotated * sin
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::LlamaConfig;
    use super::*;

    fn config(scaling: &str) -> LlamaConfig {
        LlamaConfig::from_json(&format!(
            r#"{{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,"rope_theta":10000.0,"rope_scaling":{scaling}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn position_zero_is_the_identity_and_norms_are_kept() {
        let c = config("null");
        let rope = Rope::new(&c, 16, Kind::Float, Device::Cpu);
        let x = Tensor::randn([1, 2, 3, 32], (Kind::Float, Device::Cpu));
        let at_zero = rope.apply(&x, &Tensor::zeros([1, 3], (Kind::Int64, Device::Cpu)));
        assert!(at_zero.allclose(&x, 1e-6, 1e-6, false));
        let pos = Tensor::from_slice(&[5i64, 9, 15]).view([1, 3]);
        let rotated = rope.apply(&x, &pos);
        let n0 = x.square().sum_dim_intlist(-1, false, Kind::Float);
        let n1 = rotated.square().sum_dim_intlist(-1, false, Kind::Float);
        assert!(n0.allclose(&n1, 1e-4, 1e-4, false));
    }

    #[test]
    fn scaling_changes_only_what_it_should() {
        let plain = inverse_frequencies(&config("null"));
        let linear = inverse_frequencies(&config(r#"{"type":"linear","factor":4.0}"#));
        assert!((plain[3] / linear[3] - 4.0).abs() < 1e-9);
        let llama3 = inverse_frequencies(&config(
            r#"{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":64}"#,
        ));
        // The highest frequency (short wavelength) is untouched, the lowest is divided by 8.
        assert_eq!(llama3[0], plain[0]);
        let last = plain.len() - 1;
        assert!((plain[last] / llama3[last] - 8.0).abs() < 1e-9);
    }
}
