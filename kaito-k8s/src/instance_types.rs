//! GPU (and a few CPU) instance types of Azure, AWS and GCP: what one node brings.

/// One cloud instance type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceType {
    /// SKU name as the cloud spells it (`Standard_NC24ads_A100_v4`, `p4d.24xlarge`, `a2-highgpu-1g`).
    pub name: &'static str,
    /// `azure`, `aws` or `gcp`.
    pub cloud: &'static str,
    /// GPU model, empty for CPU-only types.
    pub gpu_model: &'static str,
    /// GPUs per node.
    pub gpu_count: u32,
    /// Memory of one GPU, GiB.
    pub gpu_memory_gib: f64,
    /// vCPUs per node.
    pub vcpus: u32,
    /// Node memory, GiB.
    pub memory_gib: u32,
}

impl InstanceType {
    /// GPU memory of the whole node, GiB.
    pub fn total_gpu_memory_gib(&self) -> f64 {
        self.gpu_memory_gib * f64::from(self.gpu_count)
    }
}

macro_rules! it {
    ($name:literal, $cloud:literal, $gpu:literal, $n:expr, $mem:expr, $cpu:expr, $ram:expr) => {
        InstanceType {
            name: $name,
            cloud: $cloud,
            gpu_model: $gpu,
            gpu_count: $n,
            gpu_memory_gib: $mem as f64,
            vcpus: $cpu,
            memory_gib: $ram,
        }
    };
}

/// The table.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    // Azure NC / ND / NV
    it!("Standard_NC6s_v3", "azure", "V100", 1, 16, 6, 112),
    it!("Standard_NC12s_v3", "azure", "V100", 2, 16, 12, 224),
    it!("Standard_NC24s_v3", "azure", "V100", 4, 16, 24, 448),
    it!("Standard_NC24rs_v3", "azure", "V100", 4, 16, 24, 448),
    it!("Standard_NC4as_T4_v3", "azure", "T4", 1, 16, 4, 28),
    it!("Standard_NC8as_T4_v3", "azure", "T4", 1, 16, 8, 56),
    it!("Standard_NC16as_T4_v3", "azure", "T4", 1, 16, 16, 110),
    it!("Standard_NC64as_T4_v3", "azure", "T4", 4, 16, 64, 440),
    it!("Standard_NC24ads_A100_v4", "azure", "A100", 1, 80, 24, 220),
    it!("Standard_NC48ads_A100_v4", "azure", "A100", 2, 80, 48, 440),
    it!("Standard_NC96ads_A100_v4", "azure", "A100", 4, 80, 96, 880),
    it!("Standard_ND96asr_v4", "azure", "A100", 8, 40, 96, 900),
    it!(
        "Standard_ND96amsr_A100_v4",
        "azure",
        "A100",
        8,
        80,
        96,
        1900
    ),
    it!("Standard_NC40ads_H100_v5", "azure", "H100", 1, 94, 40, 320),
    it!("Standard_NC80adis_H100_v5", "azure", "H100", 2, 94, 80, 640),
    it!("Standard_ND96isr_H100_v5", "azure", "H100", 8, 80, 96, 1900),
    it!(
        "Standard_ND96isr_H200_v5",
        "azure",
        "H200",
        8,
        141,
        96,
        1850
    ),
    it!("Standard_NV36ads_A10_v5", "azure", "A10", 1, 24, 36, 440),
    it!("Standard_NV72ads_A10_v5", "azure", "A10", 2, 24, 72, 880),
    // AWS p / g
    it!("p3.2xlarge", "aws", "V100", 1, 16, 8, 61),
    it!("p3.8xlarge", "aws", "V100", 4, 16, 32, 244),
    it!("p3.16xlarge", "aws", "V100", 8, 16, 64, 488),
    it!("p3dn.24xlarge", "aws", "V100", 8, 32, 96, 768),
    it!("p4d.24xlarge", "aws", "A100", 8, 40, 96, 1152),
    it!("p4de.24xlarge", "aws", "A100", 8, 80, 96, 1152),
    it!("p5.48xlarge", "aws", "H100", 8, 80, 192, 2048),
    it!("p5e.48xlarge", "aws", "H200", 8, 141, 192, 2048),
    it!("g4dn.xlarge", "aws", "T4", 1, 16, 4, 16),
    it!("g4dn.12xlarge", "aws", "T4", 4, 16, 48, 192),
    it!("g5.xlarge", "aws", "A10G", 1, 24, 4, 16),
    it!("g5.2xlarge", "aws", "A10G", 1, 24, 8, 32),
    it!("g5.12xlarge", "aws", "A10G", 4, 24, 48, 192),
    it!("g5.48xlarge", "aws", "A10G", 8, 24, 192, 768),
    it!("g6.xlarge", "aws", "L4", 1, 24, 4, 16),
    it!("g6.12xlarge", "aws", "L4", 4, 24, 48, 192),
    it!("g6.48xlarge", "aws", "L4", 8, 24, 192, 768),
    // GCP a2 / a3 / g2
    it!("a2-highgpu-1g", "gcp", "A100", 1, 40, 12, 85),
    it!("a2-highgpu-2g", "gcp", "A100", 2, 40, 24, 170),
    it!("a2-highgpu-4g", "gcp", "A100", 4, 40, 48, 340),
    it!("a2-highgpu-8g", "gcp", "A100", 8, 40, 96, 680),
    it!("a2-megagpu-16g", "gcp", "A100", 16, 40, 96, 1360),
    it!("a2-ultragpu-1g", "gcp", "A100", 1, 80, 12, 170),
    it!("a2-ultragpu-2g", "gcp", "A100", 2, 80, 24, 340),
    it!("a2-ultragpu-4g", "gcp", "A100", 4, 80, 48, 680),
    it!("a2-ultragpu-8g", "gcp", "A100", 8, 80, 96, 1360),
    it!("a3-highgpu-8g", "gcp", "H100", 8, 80, 208, 1872),
    it!("a3-megagpu-8g", "gcp", "H100", 8, 80, 208, 1872),
    it!("a3-ultragpu-8g", "gcp", "H200", 8, 141, 224, 2952),
    it!("g2-standard-4", "gcp", "L4", 1, 24, 4, 16),
    it!("g2-standard-24", "gcp", "L4", 2, 24, 24, 96),
    it!("g2-standard-48", "gcp", "L4", 4, 24, 48, 192),
    it!("g2-standard-96", "gcp", "L4", 8, 24, 96, 384),
    // CPU-only types for GGUF presets
    it!("Standard_D4s_v5", "azure", "", 0, 0, 4, 16),
    it!("Standard_D8s_v5", "azure", "", 0, 0, 8, 32),
    it!("m6i.xlarge", "aws", "", 0, 0, 4, 16),
    it!("m6i.2xlarge", "aws", "", 0, 0, 8, 32),
    it!("e2-standard-4", "gcp", "", 0, 0, 4, 16),
    it!("e2-standard-8", "gcp", "", 0, 0, 8, 32),
];

/// Looks an instance type up by exact name.
pub fn find(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// Memory of one MIG slice for a profile such as `1g.10gb` or `3g.40gb`, GiB.
pub fn mig_profile_memory_gib(profile: &str) -> Option<f64> {
    let mem = profile.split('.').nth(1)?.strip_suffix("gb")?;
    mem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = INSTANCE_TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn mig_profiles_parse() {
        assert_eq!(mig_profile_memory_gib("2g.24gb"), Some(24.0));
        assert_eq!(mig_profile_memory_gib("bogus"), None);
    }
}
