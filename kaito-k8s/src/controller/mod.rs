//! kube-runtime controllers for Workspaces and InferenceSets.

pub mod runner;
