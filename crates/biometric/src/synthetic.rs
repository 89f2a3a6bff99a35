//! A synthetic population of correlated binary templates, for tests and the
//! evaluation of error rates.
//!
//! Independent random bits would flatter a fuzzy extractor: real templates (iris
//! codes above all) are biased and spatially correlated, so two people agree on
//! more bits than chance and neighbouring bits fail together. This model has both,
//! on the template grid of [`TEMPLATE_ROWS`] × [`TEMPLATE_COLUMNS`] (radial bands
//! × angular positions, columns wrapping around):
//!
//! - **Population bias.** Each position `j` has a bit probability
//!   `p_j ~ Beta(a, a)` ([`Model::bias_shape`]), shared by everyone. With the
//!   default `a = 8` two unrelated templates differ in `2·E[p(1−p)] ≈ 47 %` of
//!   bits, not 50 %, and the population's most likely template is about 40 %
//!   from anyone's: an attacker who knows the statistics starts closer than chance.
//! - **Spatial correlation.** A person is a Gaussian random field: white noise
//!   smoothed by a Gaussian kernel of [`Model::smoothing`] cells, scaled to unit
//!   variance. Bit `j` is 1 when the field lies below `Φ⁻¹(p_j)`, so its marginal
//!   probability is `p_j` and neighbours agree (at the default 1.0 cell, adjacent
//!   bits agree about 78 % of the time). The field has roughly `4096 / (4π·1.0²)`
//!   ≈ 330 degrees of freedom, fewer than Daugman's ratio for iris codes (249 of
//!   2048), which widens the impostor distribution (standard deviation ≈ 0.03
//!   against his 0.032 at half the length): a harder population than real irises.
//! - **Genuine readings** are the template with noise at a given bit-error rate
//!   (BER), of two kinds. *Occlusion bursts* ([`Model::burst_share`] of the
//!   expected errors, 30 % by default): rectangular patches of 2–8 rows, mostly
//!   the outer rows as eyelids do, whose bits are replaced by random ones (half of
//!   them flip). *Scattered flips* for the rest, more likely where the field is
//!   near its threshold (fragile bits, weight `0.5 + e^(−2·margin)`), so they too
//!   cluster along the boundaries of the field's regions. A bit's flip
//!   probability is capped at ½, so at very high rates the realised BER can fall
//!   a little short of the nominal one.
//! - **A realistic mixture** of rates ([`realistic_ber`]): `0.02 + 0.38·Beta(2, 6)`,
//!   mean 11.5 %, standard deviation 5.5 %, about 0.2 % of readings above 30 %:
//!   close to the genuine (same-eye) Hamming distances Daugman reports (mean
//!   about 0.11).
//!
//! Everything is deterministic: the population from its seed, person `i` from
//! `(seed, i)`, readings from the generator passed in.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Template, TEMPLATE_BITS, TEMPLATE_BYTES, TEMPLATE_COLUMNS, TEMPLATE_ROWS};

/// The population model's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// The shape `a` of the `Beta(a, a)` distribution of per-position bit
    /// probabilities (smaller: more biased positions, closer impostors).
    pub bias_shape: u32,
    /// The standard deviation, in grid cells, of the Gaussian kernel that
    /// smooths each person's field (larger: stronger spatial correlation).
    /// Zero gives independent bits.
    pub smoothing: f64,
    /// The share of a reading's expected bit errors that come from occlusion
    /// bursts rather than scattered flips, in `[0, 1]`.
    pub burst_share: f64,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            bias_shape: 8,
            smoothing: 1.0,
            burst_share: 0.3,
        }
    }
}

/// A population: per-position bit probabilities, and people drawn from them.
#[derive(Clone, Debug)]
pub struct Population {
    model: Model,
    seed: u64,
    probabilities: Vec<f64>,
    thresholds: Vec<f64>,
}

impl Population {
    /// The population of `model` for `seed`.
    pub fn new(model: Model, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = model.bias_shape.max(1);
        let probabilities: Vec<f64> = (0..TEMPLATE_BITS).map(|_| beta(a, a, &mut rng)).collect();
        let thresholds = probabilities.iter().map(|p| normal_quantile(*p)).collect();
        Self {
            model,
            seed,
            probabilities,
            thresholds,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Person `index` (the same person for the same population and index).
    pub fn person(&self, index: u64) -> Person {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index.wrapping_add(1));
        let field = gaussian_field(self.model.smoothing, &mut rng);
        let mut bytes = [0u8; TEMPLATE_BYTES];
        let mut fragility = vec![0f32; TEMPLATE_BITS];
        for (j, (g, t)) in field.iter().zip(&self.thresholds).enumerate() {
            if g < t {
                bytes[j >> 3] |= 1 << (j & 7);
            }
            fragility[j] = (0.5 + (-2.0 * (g - t).abs()).exp()) as f32;
        }
        Person {
            template: Template::new(bytes),
            fragility,
            burst_share: self.model.burst_share.clamp(0.0, 1.0),
        }
    }

    /// The template of most likely bits (each position's majority): what an
    /// attacker who knows the population's statistics, and nothing about the
    /// victim, would present.
    pub fn most_likely_template(&self) -> Template {
        let mut bytes = [0u8; TEMPLATE_BYTES];
        for (j, p) in self.probabilities.iter().enumerate() {
            if *p > 0.5 {
                bytes[j >> 3] |= 1 << (j & 7);
            }
        }
        Template::new(bytes)
    }
}

/// One synthetic person: an enrolled template and how each bit tends to fail.
#[derive(Clone)]
pub struct Person {
    template: Template,
    fragility: Vec<f32>,
    burst_share: f64,
}

impl core::fmt::Debug for Person {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Person(..)")
    }
}

impl Person {
    /// The noise-free template (what enrollment sees).
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// A reading with bit-error rate `ber` (expected; clamped to `[0, 0.5]`):
    /// occlusion bursts plus scattered flips weighted to fragile bits.
    pub fn reading<R: RngCore + ?Sized>(&self, ber: f64, rng: &mut R) -> Template {
        let ber = if ber.is_nan() {
            0.0
        } else {
            ber.clamp(0.0, 0.5)
        };
        let mut bytes = *self.template.as_bytes();
        let expected = ber * TEMPLATE_BITS as f64;

        let budget = (2.0 * self.burst_share * expected).round() as usize;
        let mut occluded = vec![false; TEMPLATE_BITS];
        let mut occluded_count = 0;
        for _ in 0..64 {
            if occluded_count >= budget {
                break;
            }
            let height = (2 + below(rng, 7)).min(TEMPLATE_ROWS);
            let width = (budget - occluded_count)
                .div_ceil(height)
                .clamp(1, TEMPLATE_COLUMNS / 4);
            // Eyelids cover the outer bands; reflections and lashes fall anywhere.
            let top = if uniform(rng) < 0.7 {
                TEMPLATE_ROWS - height
            } else {
                below(rng, TEMPLATE_ROWS - height + 1)
            };
            let left = below(rng, TEMPLATE_COLUMNS);
            for row in top..top + height {
                for c in 0..width {
                    let j = row * TEMPLATE_COLUMNS + (left + c) % TEMPLATE_COLUMNS;
                    if !occluded[j] {
                        occluded[j] = true;
                        occluded_count += 1;
                    }
                }
            }
        }

        let flips = (expected - occluded_count as f64 / 2.0).max(0.0);
        let weight: f64 = self
            .fragility
            .iter()
            .zip(&occluded)
            .filter(|(_, o)| !**o)
            .map(|(w, _)| f64::from(*w))
            .sum();
        let scale = if weight > 0.0 { flips / weight } else { 0.0 };
        for (j, (w, o)) in self.fragility.iter().zip(&occluded).enumerate() {
            let flip = if *o {
                rng.next_u32() & 1 == 1
            } else {
                (rng.next_u32() as f32) < (scale as f32 * w).min(0.5) * 4_294_967_296.0
            };
            if flip {
                bytes[j >> 3] ^= 1 << (j & 7);
            }
        }
        Template::new(bytes)
    }
}

/// A bit-error rate from the realistic mixture: `0.02 + 0.38·Beta(2, 6)`.
pub fn realistic_ber<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    0.02 + 0.38 * beta(2, 6, rng)
}

/// Uniform in `[0, 1)`.
fn uniform<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in `0..n` (`n` is small: the modulo bias is negligible).
fn below<R: RngCore + ?Sized>(rng: &mut R, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Standard normal (Box–Muller).
fn normal<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    let u = 1.0 - uniform(rng);
    let v = uniform(rng);
    (-2.0 * u.ln()).sqrt() * (core::f64::consts::TAU * v).cos()
}

/// `Beta(a, b)` for integer shapes: the `a`-th smallest of `a + b − 1` uniforms.
fn beta<R: RngCore + ?Sized>(a: u32, b: u32, rng: &mut R) -> f64 {
    let mut draws: Vec<f64> = (0..a + b - 1).map(|_| uniform(rng)).collect();
    draws.sort_by(f64::total_cmp);
    draws[a as usize - 1]
}

/// `Φ(x)`, by the Chebyshev approximation of erfc (relative error < 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / core::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// `Φ⁻¹(p)` by bisection.
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-9.0, 9.0);
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// A unit-variance stationary Gaussian field on the template grid: white noise
/// convolved with a separable Gaussian kernel (wrapping in columns; rows are
/// padded so the edges are as random as the middle).
fn gaussian_field<R: RngCore + ?Sized>(sigma: f64, rng: &mut R) -> Vec<f64> {
    let radius = if sigma > 0.0 {
        (3.0 * sigma).ceil() as usize
    } else {
        0
    };
    let mut kernel: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            if sigma > 0.0 {
                (-d * d / (2.0 * sigma * sigma)).exp()
            } else {
                1.0
            }
        })
        .collect();
    let norm = kernel.iter().map(|k| k * k).sum::<f64>().sqrt();
    kernel.iter_mut().for_each(|k| *k /= norm);

    let rows = TEMPLATE_ROWS + 2 * radius;
    let noise: Vec<f64> = (0..rows * TEMPLATE_COLUMNS).map(|_| normal(rng)).collect();
    let mut across = vec![0f64; rows * TEMPLATE_COLUMNS];
    for r in 0..rows {
        for c in 0..TEMPLATE_COLUMNS {
            across[r * TEMPLATE_COLUMNS + c] = kernel
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let column = (c + TEMPLATE_COLUMNS + i - radius) % TEMPLATE_COLUMNS;
                    k * noise[r * TEMPLATE_COLUMNS + column]
                })
                .sum();
        }
    }
    let mut field = vec![0f64; TEMPLATE_BITS];
    for r in 0..TEMPLATE_ROWS {
        for c in 0..TEMPLATE_COLUMNS {
            field[r * TEMPLATE_COLUMNS + c] = kernel
                .iter()
                .enumerate()
                .map(|(i, k)| k * across[(r + i) * TEMPLATE_COLUMNS + c])
                .sum();
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        for p in [0.01, 0.2, 0.5, 0.77, 0.99] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-6);
        }
        assert!(normal_quantile(0.5).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-4);
    }

    #[test]
    fn people_are_deterministic_and_distinct() {
        let population = Population::new(Model::default(), 7);
        let a = population.person(3);
        let b = Population::new(Model::default(), 7).person(3);
        assert_eq!(a.template().as_bytes(), b.template().as_bytes());
        let c = population.person(4);
        let d = a.template().distance(c.template());
        assert!((0.35..0.6).contains(&d), "{d}");
    }

    #[test]
    fn readings_have_about_the_asked_error_rate() {
        let population = Population::new(Model::default(), 1);
        let person = population.person(0);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for ber in [0.0, 0.1, 0.25] {
            let mean: f64 = (0..40)
                .map(|_| person.reading(ber, &mut rng).distance(person.template()))
                .sum::<f64>()
                / 40.0;
            assert!((mean - ber).abs() < 0.01, "{ber}: {mean}");
        }
    }

    #[test]
    fn neighbouring_bits_agree() {
        let population = Population::new(Model::default(), 5);
        let person = population.person(0);
        let t = person.template();
        let agree = (0..TEMPLATE_BITS)
            .filter(|j| {
                let right = j - j % TEMPLATE_COLUMNS + (j + 1) % TEMPLATE_COLUMNS;
                t.bit(*j) == t.bit(right)
            })
            .count();
        let share = agree as f64 / TEMPLATE_BITS as f64;
        assert!((0.7..0.9).contains(&share), "{share}");
    }
}
