//! The portable form of one quantized weight: the tensors a checkpoint holds, on any device,
//! before any kernel-specific repacking.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::scheme::QuantScheme;
use super::{format, int4, int8};
use crate::error::{Error, Result};

/// One quantized `[out, in]` weight in the layout [`format`] describes.
pub(crate) struct StoredWeights {
    /// The scheme, with the group size this layer really uses.
    pub scheme: QuantScheme,
    pub out_features: i64,
    pub in_features: i64,
    /// INT8: `i8 [out, in]`; INT4: `u8 [out, in/2]` (see [`int4::pack`]).
    pub qweight: Tensor,
    /// INT8: `f32 [out]`; INT4: `f16 [out, in/group]`.
    pub scales: Tensor,
    /// INT4 only: `u8 [out, in/group]`, zero points in sixteenths of a code.
    pub zeros: Option<Tensor>,
}

impl StoredWeights {
    /// Quantizes a float `[out, in]` weight on its own device.
    pub fn quantize(weight: &Tensor, scheme: QuantScheme) -> Result<Self> {
        let (out_features, in_features) = match weight.size()[..] {
            [o, i] => (o, i),
            ref s => {
                return Err(Error::Quantization(format!(
                    "a linear weight is 2-D [out, in], got shape {s:?}"
                )))
            }
        };
        if !weight.is_floating_point() {
            return Err(Error::Quantization(format!(
                "a linear weight is a float tensor, got {:?}",
                weight.kind()
            )));
        }
        match scheme {
            QuantScheme::Int8 => {
                let (qweight, scales) = int8::quantize(weight);
                Ok(StoredWeights {
                    scheme,
                    out_features,
                    in_features,
                    qweight,
                    scales,
                    zeros: None,
                })
            }
            QuantScheme::Int4 { group_size } => {
                let group_size = int4::group_size_for(in_features, group_size)?;
                let codes = int4::quantize(weight, group_size)?;
                Ok(StoredWeights {
                    scheme: QuantScheme::Int4 { group_size },
                    out_features,
                    in_features,
                    qweight: int4::pack(&codes.codes),
                    scales: codes.scales,
                    zeros: Some(codes.zeros),
                })
            }
        }
    }

    /// Checks and adopts tensors read from a checkpoint (moved to `qweight`'s device). The INT4
    /// group size comes from the shapes (`in / scales.size(1)`); `scheme` only says which of
    /// INT8 and INT4 to expect.
    pub fn from_parts(
        scheme: QuantScheme,
        qweight: Tensor,
        scales: Tensor,
        zeros: Option<Tensor>,
    ) -> Result<Self> {
        let bad = |m: String| Err(Error::Quantization(m));
        let device = qweight.device();
        let (out_features, width) = match qweight.size()[..] {
            [o, w] => (o, w),
            ref s => return bad(format!("qweight must be 2-D, got shape {s:?}")),
        };
        if !scales.is_floating_point() {
            return bad(format!("scales must be float, got {:?}", scales.kind()));
        }
        match scheme {
            QuantScheme::Int8 => {
                if qweight.kind() != Kind::Int8 {
                    return bad(format!("INT8 qweight must be i8, got {:?}", qweight.kind()));
                }
                if scales.size() != [out_features] {
                    return bad(format!(
                        "INT8 scales must be [{out_features}], got {:?}",
                        scales.size()
                    ));
                }
                if zeros.is_some() {
                    return bad("INT8 weights have no zero points".into());
                }
                Ok(StoredWeights {
                    scheme,
                    out_features,
                    in_features: width,
                    qweight: qweight.contiguous(),
                    scales: scales.to_device(device).to_kind(Kind::Float),
                    zeros: None,
                })
            }
            QuantScheme::Int4 { .. } => {
                let in_features = width * 2;
                if qweight.kind() != Kind::Uint8 {
                    return bad(format!("INT4 qweight must be u8, got {:?}", qweight.kind()));
                }
                let groups = match scales.size()[..] {
                    [o, g] if o == out_features && g > 0 && in_features % g == 0 => g,
                    ref s => {
                        return bad(format!(
                            "INT4 scales must be [{out_features}, groups] with groups dividing {in_features}, got {s:?}"
                        ))
                    }
                };
                let Some(zeros) = zeros else {
                    return bad("INT4 weights need zero points".into());
                };
                if zeros.size() != [out_features, groups] || zeros.kind() != Kind::Uint8 {
                    return bad(format!(
                        "INT4 zeros must be u8 [{out_features}, {groups}], got {:?} {:?}",
                        zeros.kind(),
                        zeros.size()
                    ));
                }
                Ok(StoredWeights {
                    scheme: QuantScheme::Int4 {
                        group_size: in_features / groups,
                    },
                    out_features,
                    in_features,
                    qweight: qweight.contiguous(),
                    scales: scales.to_device(device).to_kind(Kind::Half),
                    zeros: Some(zeros.to_device(device)),
                })
            }
        }
    }

    /// Reads `NAME.qweight`, `NAME.scales` and (INT4) `NAME.zeros` from `tensors`.
    pub fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        scheme: QuantScheme,
    ) -> Result<Self> {
        let get = |suffix: &str| {
            let key = format!("{name}.{suffix}");
            tensors
                .get(&key)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| Error::Quantization(format!("missing tensor {key}")))
        };
        let zeros = match scheme {
            QuantScheme::Int8 => None,
            QuantScheme::Int4 { .. } => Some(get(format::ZEROS)?),
        };
        Self::from_parts(scheme, get(format::QWEIGHT)?, get(format::SCALES)?, zeros)
    }

    /// The named tensors a checkpoint stores for the module `name`, on the CPU and contiguous.
    pub fn tensors(&self, name: &str) -> Vec<(String, Tensor)> {
        let cpu = |t: &Tensor| t.to_device(Device::Cpu).contiguous();
        let mut out = vec![
            (format!("{name}.{}", format::QWEIGHT), cpu(&self.qweight)),
            (format!("{name}.{}", format::SCALES), cpu(&self.scales)),
        ];
        if let Some(zeros) = &self.zeros {
            out.push((format!("{name}.{}", format::ZEROS), cpu(zeros)));
        }
        out
    }

    /// The weight `[out, in]` as `kind`.
    pub fn dequantize(&self, kind: Kind) -> Tensor {
        match &self.zeros {
            None => int8::dequantize(&self.qweight, &self.scales, kind),
            Some(zeros) => {
                int4::dequantize(&int4::unpack(&self.qweight), &self.scales, zeros, kind)
            }
        }
    }

    /// The same weights on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        StoredWeights {
            scheme: self.scheme,
            out_features: self.out_features,
            in_features: self.in_features,
            qweight: self.qweight.to_device(device),
            scales: self.scales.to_device(device),
            zeros: self.zeros.as_ref().map(|z| z.to_device(device)),
        }
    }
}

/// Bytes of a tensor's elements.
pub(crate) fn tensor_bytes(t: &Tensor) -> u64 {
    (t.numel() * t.kind().elt_size_in_bytes()) as u64
}
