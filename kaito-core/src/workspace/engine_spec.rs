//! What a Workspace's `inference.engine` does to an [`EngineConfig`].

use super::EngineSpec;
use crate::engine::EngineConfig;
use crate::error::Result;

impl EngineSpec {
    /// `engine` with the fields this spec sets overlaid.
    pub fn apply_to(&self, mut engine: EngineConfig) -> Result<EngineConfig> {
        if let Some(b) = &self.backend {
            engine.backend = b.parse()?;
        }
        if let Some(v) = self.threads {
            engine.threads = v;
        }
        if let Some(v) = self.ctx_size {
            engine.ctx_size = Some(v);
        }
        if let Some(v) = self.parallel {
            engine.parallel = v;
        }
        if let Some(v) = self.max_queue {
            engine.max_queue = v;
        }
        if let Some(v) = self.batch_size {
            engine.batch_size = v;
        }
        if let Some(v) = self.gpu_layers {
            engine.gpu_layers = v;
        }
        if let Some(v) = self.prefix_cache_mib {
            engine.prefix_cache_mib = v;
        }
        if let Some(v) = &self.device {
            engine.device = Some(v.clone());
        }
        if let Some(v) = &self.dtype {
            engine.dtype = Some(v.clone());
        }
        if let Some(v) = &self.quantization {
            engine.quantization = Some(v.clone());
        }
        Ok(engine)
    }
}
