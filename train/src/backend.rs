//! The Burn backends decant trains on, chosen at build time by cargo features
//! and at run time by `--backend`.

use std::fmt;
use std::str::FromStr;

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend, Device, DeviceId};

/// The default CPU backend: Flex, Burn's pure-Rust CPU backend (SIMD, rayon
/// threads, the `gemm` crate's matmul), with gemm's AVX-512 kernels compiled in by
/// the default `x86-v4` feature; gemm picks them at run time, only on CPUs that
/// have AVX-512, so the feature is safe everywhere. Why Flex: it trained fastest
/// of the CPU backends that build offline (DESIGN.md, a 7.4M-parameter Llama,
/// 8 × 128 tokens, 2 threads: Flex + x86-v4 1,770 tok/s, Flex 1,470, ndarray +
/// OpenBLAS 1,410, ndarray 1,290). `benches/backend_step.rs` measures the same
/// four candidates on the Burn version in use.
pub type CpuBackend = burn::backend::Flex;

#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn::backend::Wgpu;

#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// A computation generic over the backend it trains on, which [`dispatch`] runs on
/// the backend a [`BackendKind`] names. Commands parse `--backend` once and hand
/// their whole body over, so each backend is monomorphized once, not per call.
pub trait BackendFn {
    type Output;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `f` on `kind`'s backend and its default device (the first GPU for wgpu
/// and cuda; `CUBECL_WGPU_DEFAULT_DEVICE` overrides the wgpu choice, e.g. `Cpu`
/// for lavapipe on a machine that also has a GPU). Only the arms of compiled-in
/// backends exist; the others refuse, as parsing the name does.
pub fn dispatch<F: BackendFn>(kind: BackendKind, f: F) -> Result<F::Output, BackendError> {
    match kind {
        BackendKind::Cpu => Ok(f.run::<Autodiff<CpuBackend>>(Default::default())),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(f.run::<Autodiff<WgpuBackend>>(Default::default())),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(f.run::<Autodiff<CudaBackend>>(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => Err(BackendError::NotCompiledIn(kind)),
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => Err(BackendError::NotCompiledIn(kind)),
    }
}

/// The first `count` devices of `B`'s kind, from its default one: GPUs 0, 1, …;
/// on the CPU, replicas share the one device (and its thread pool).
pub fn devices<B: Backend>(count: usize) -> Vec<B::Device> {
    let first = B::Device::default().to_id();
    (0..count)
        .map(|at| {
            B::Device::from_id(DeviceId {
                type_id: first.type_id,
                index_id: first.index_id + at as u16,
            })
        })
        .collect()
}

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

    /// A gradient step on `x² + y²` from a point, generic over the backend, that
    /// also reports which backend it ran on.
    struct DescendOnce {
        point: [f32; 2],
    }

    impl BackendFn for DescendOnce {
        type Output = (String, Vec<f32>);

        fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
            let x = Tensor::<B, 1>::from_data(TensorData::new(self.point.to_vec(), [2]), &device)
                .require_grad();
            let grads = x.clone().powi_scalar(2).sum().backward();
            let step = x.grad(&grads).expect("x requires grad").mul_scalar(0.25);
            let moved = x.inner() - step;
            (
                std::any::type_name::<B>().to_string(),
                moved.into_data().to_vec::<f32>().unwrap(),
            )
        }
    }

    #[test]
    fn dispatch_runs_generic_code_on_the_named_backend() {
        let (backend, moved) = dispatch(BackendKind::Cpu, DescendOnce { point: [2.0, -4.0] })
            .expect("the CPU backend is always compiled in");
        assert_eq!(backend, std::any::type_name::<Autodiff<CpuBackend>>());
        // x − 0.25 · 2x = x / 2
        assert_eq!(moved, [1.0, -2.0]);
    }

    #[test]
    fn dispatch_refuses_backends_not_compiled_in() {
        for kind in BackendKind::ALL.into_iter().filter(|k| !k.is_compiled_in()) {
            let err = dispatch(kind, DescendOnce { point: [0.0, 0.0] }).unwrap_err();
            assert_eq!(err, BackendError::NotCompiledIn(kind));
            assert!(
                err.to_string().contains(&format!("--features {kind}")),
                "{err}"
            );
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
