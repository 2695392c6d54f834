//! KAITO-compatible Kubernetes CRDs, rendering and controller (in progress).
