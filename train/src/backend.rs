//! The Burn backends decant trains on, chosen at build time by cargo features
//! and at run time by `--backend`.

use std::fmt;
use std::str::FromStr;

/// The default CPU backend. Flex is Burn's pure-Rust CPU backend with SIMD and
/// threads; on this machine class it trains faster than ndarray (see DESIGN.md).
pub type CpuBackend = burn::backend::Flex;

#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn::backend::Wgpu;

#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// A backend named on the command line or in a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    #[default]
    Cpu,
    Wgpu,
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Cpu, BackendKind::Wgpu, BackendKind::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled_in(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("unknown backend '{0}': expected one of cpu, wgpu, cuda")]
    Unknown(String),
    #[error(
        "backend '{0}' is not compiled into this binary: rebuild with `cargo build --release --features {0}`"
    )]
    NotCompiledIn(BackendKind),
}

impl FromStr for BackendKind {
    type Err = BackendError;

    /// Parses a backend name and refuses one this binary cannot run, so that a
    /// recipe asking for CUDA fails before any work starts rather than mid-run.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind = BackendKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| BackendError::Unknown(s.to_string()))?;
        if kind.is_compiled_in() {
            Ok(kind)
        } else {
            Err(BackendError::NotCompiledIn(kind))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::{Tensor, TensorData};

    #[test]
    fn parses_names_and_refuses_missing_features() {
        assert_eq!("CPU".parse::<BackendKind>(), Ok(BackendKind::Cpu));
        assert_eq!(
            "tpu".parse::<BackendKind>(),
            Err(BackendError::Unknown("tpu".into()))
        );
        if !cfg!(feature = "cuda") {
            let err = "cuda".parse::<BackendKind>().unwrap_err();
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }

    #[test]
    fn cpu_backend_computes_and_differentiates() {
        type B = Autodiff<CpuBackend>;
        let device = Default::default();
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &device,
        )
        .require_grad();
        let y = x.clone().matmul(x.clone()).sum();
        let grads = y.backward();
        let gx = x.grad(&grads).expect("x requires grad");
        // d/dX sum(X·X) = 1·Xᵀ + Xᵀ·1 (summed over rows and columns).
        let expected = [7.0f32, 11.0, 9.0, 13.0];
        assert_eq!(gx.into_data().to_vec::<f32>().unwrap(), expected);
        assert_eq!(y.into_data().to_vec::<f32>().unwrap(), [54.0]);
    }
}
