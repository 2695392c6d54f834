//! `kaito model package` / `kaito model pull`: models as OCI artifacts.

use anyhow::Result;
use kaito_core::model::fetch::oci::{self, OciArtifact};
use kaito_core::model::plan::LoadOptions;
use kaito_core::model::OciReference;

use crate::args::{ModelAction, ModelCommandArgs, PackageArgs};
use crate::runtime;

/// Runs `kaito model`.
pub async fn run(args: ModelCommandArgs) -> Result<()> {
    match args.action {
        ModelAction::Pull(a) => runtime::pull(a.load_options(), a.hold).await,
        ModelAction::Package(a) => package(a).await,
    }
}

async fn package(args: PackageArgs) -> Result<()> {
    let target = match &args.push {
        Some(spec) => Some(OciReference::parse(spec)?),
        None => None,
    };
    let plan = runtime::plan(&LoadOptions {
        model: args.model.clone(),
        cache_dir: args.cache_dir.clone(),
        ..LoadOptions::default()
    })?;
    let weights = runtime::fetch(&plan).await?;
    let store = kaito_core::model::store::ModelStore::new(plan.cache_dir.clone());
    let path = weights.primary.clone();
    let mut insecure = oci::insecure_registries();
    insecure.extend(args.insecure_registry.iter().cloned());
    let out = args.out.clone();
    let tag = args.tag.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let packaged = oci::package(&path)?;
        if let Some(dir) = out {
            packaged.write_layout(&dir, &tag)?;
            eprintln!("wrote an OCI image layout to {} (tag {tag})", dir.display());
        }
        if let Some(reference) = target {
            let artifact = OciArtifact::with_insecure_list(reference.clone(), &insecure);
            // Blobs this machine pulled from other repositories of the registry can be mounted.
            let mounts = oci::stored_repositories(&store, &reference.registry)?;
            let sent = packaged.push(artifact.reference(), artifact.is_insecure(), &mounts)?;
            eprintln!(
                "pushed {reference} ({} blobs uploaded, {} mounted from other repositories)",
                sent.uploaded, sent.mounted
            );
        }
        println!("{}", packaged.digest);
        Ok(())
    })
    .await?
}
