//! Negative log-likelihoods of target tokens and their running statistics.

/// `-log softmax(logits)[target]`, computed as llama-perplexity computes it: the
/// maximum in f32, each `exp` in f32 and their sum in f64. Then decant's figures
/// and llama.cpp's differ only as much as the logits do.
pub fn token_nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    sum.ln() - f64::from(logits[target] - max)
}

/// Count, sum and sum of squares of the NLLs scored so far.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NllStats {
    count: usize,
    sum: f64,
    sum_sq: f64,
}

impl NllStats {
    pub fn add(&mut self, nll: f64) {
        self.count += 1;
        self.sum += nll;
        self.sum_sq += nll * nll;
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The mean NLL; NaN before any token is scored.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    pub fn perplexity(&self) -> f64 {
        self.mean().exp()
    }

    /// llama-perplexity's "±": the standard error of the mean NLL, carried to the
    /// perplexity through its derivative, `ppl · sqrt(var / (n - 1))`. `None` with
    /// fewer than two tokens or no spread, where llama.cpp prints no estimate.
    pub fn perplexity_error(&self) -> Option<f64> {
        let mean = self.mean();
        let variance = self.sum_sq / self.count as f64 - mean * mean;
        (self.count > 1 && variance > 0.0)
            .then(|| (variance / (self.count - 1) as f64).sqrt() * self.perplexity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_the_negative_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0, -50.0];
        let denominator: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for target in 0..logits.len() {
            let expected = denominator.ln() - f64::from(logits[target]);
            assert!((token_nll(&logits, target) - expected).abs() < 1e-6);
        }
        // Large logits do not overflow: only differences from the maximum matter.
        let shifted = logits.map(|l| l + 1000.0);
        assert!((token_nll(&shifted, 2) - token_nll(&logits, 2)).abs() < 1e-4);
    }

    #[test]
    fn error_estimate_follows_llama_perplexity() {
        let mut stats = NllStats::default();
        stats.add(1.0);
        assert_eq!(stats.perplexity_error(), None);
        stats.add(3.0);
        // mean 2, variance 1, n 2: e² · sqrt(1 / 1).
        assert_eq!((stats.count(), stats.mean()), (2, 2.0));
        let error = stats.perplexity_error().unwrap();
        assert!((error - 2f64.exp()).abs() < 1e-12, "{error}");
        let mut flat = NllStats::default();
        flat.add(0.5);
        flat.add(0.5);
        assert_eq!(flat.perplexity_error(), None);
    }
}
