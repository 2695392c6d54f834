//! `kaito cache`: what the model store holds, and making room in it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kaito_core::model::default_cache_dir;
use kaito_core::model::store::{ModelStore, StoreEntry};

/// `kaito cache`.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Model cache directory.
    #[arg(long, env = "KAITO_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: CacheAction,
}

/// `kaito cache` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CacheAction {
    /// List the stored files, least recently used first: digest, size, last use, held, the
    /// sources naming them (and, in a model of several files, the file's path in it).
    #[command(alias = "ls")]
    List,
    /// Evict the least recently used models (unreferenced ones first) until the store fits
    /// SIZE; models a running process serves stay.
    Prune {
        /// Size to fit, in bytes or with a unit: 500M, 20G, 1.5T (powers of 1024).
        #[arg(long, value_parser = parse_size)]
        max_size: u64,
    },
    /// Forget a source key (its blob goes at the next prune, unless another key names it).
    #[command(alias = "rm")]
    Remove {
        /// The key, as `kaito cache list` shows it (`hf/ORG/REPO/REV/FILE`, `pypi/PKG/VER/MEMBER`).
        key: String,
    },
}

/// Runs `kaito cache`.
pub fn run(args: CacheArgs) -> Result<()> {
    let store = ModelStore::new(args.cache_dir.unwrap_or_else(default_cache_dir));
    match args.action {
        CacheAction::List => {
            let entries = store.entries()?;
            println!(
                "{:<19} {:>10} {:<20} {:<4} SOURCES",
                "DIGEST", "SIZE", "LAST USE", "HELD"
            );
            for e in &entries {
                print_entry(e);
            }
            let total: u64 = entries.iter().map(|e| e.size).sum();
            let models: std::collections::BTreeSet<&str> = entries
                .iter()
                .flat_map(|e| e.keys.iter().map(String::as_str))
                .collect();
            println!(
                "{} of {}, {} in {}",
                count(entries.len(), "file"),
                count(models.len(), "model"),
                human(total),
                store.root().display()
            );
        }
        CacheAction::Prune { max_size } => {
            let removed = store.prune(max_size)?;
            for e in &removed {
                print_entry(e);
            }
            let freed: u64 = removed.iter().map(|e| e.size).sum();
            let left: u64 = store.entries()?.iter().map(|e| e.size).sum();
            println!(
                "evicted {} ({}); {} left",
                count(removed.len(), "file"),
                human(freed),
                human(left)
            );
            if left > max_size {
                eprintln!(
                    "the store still holds {}, above {}: the rest is held by running servers",
                    human(left),
                    human(max_size)
                );
            }
        }
        CacheAction::Remove { key } => {
            if !store.remove(&key)? {
                bail!("the store has no key `{key}` (see `kaito cache list`)");
            }
            println!("removed {key}");
        }
    }
    Ok(())
}

/// `1 file`, `3 files`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn print_entry(e: &StoreEntry) {
    let digest = e.digest.get(..19).unwrap_or(&e.digest);
    let keys = if e.keys.is_empty() {
        "-".to_owned()
    } else {
        e.keys
            .iter()
            .zip(&e.paths)
            .map(|(key, path)| {
                if path.is_empty() {
                    key.clone()
                } else {
                    format!("{key} [{path}]")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{digest:<19} {:>10} {:<20} {:<4} {keys}",
        human(e.size),
        ago(e.last_used),
        if e.held { "yes" } else { "no" },
    );
}

/// `SIZE[K|M|G|T][i][B]`, powers of 1024.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text
        .trim()
        .trim_end_matches(['b', 'B'])
        .trim_end_matches('i');
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{text}`: the unit must be K, M, G or T")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size (for example 500M or 20G)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is not a size (for example 500M or 20G)"));
    }
    Ok((value * (1u64 << shift) as f64) as u64)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How long ago Unix second `then` was, roughly.
fn ago(then: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(then);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates() {
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("12X").unwrap_err().contains("unit"));
        assert!(parse_size("lots").is_err());
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(ago(0).split(' ').nth(1), Some("days"));
    }
}
