//! Interleaved timing: every benchmark runs a short batch in turn, round after
//! round, so machine noise (another process, frequency changes) falls on all
//! of them alike rather than on whichever ran during the disturbance.

use std::time::Instant;

/// One thing to time: `run` does one iteration.
pub(crate) struct Bench<'a> {
    pub(crate) name: &'static str,
    pub(crate) run: Box<dyn FnMut() + 'a>,
}

/// Per-iteration times of each bench, in microseconds.
pub(crate) struct Samples {
    pub(crate) name: &'static str,
    pub(crate) micros: Vec<f64>,
}

impl Samples {
    pub(crate) fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    pub(crate) fn p10(&self) -> f64 {
        self.quantile(0.1)
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.micros.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }
}

/// Runs `rounds` rounds of `batch` iterations of each bench, after one warm-up round.
pub(crate) fn interleaved(benches: &mut [Bench<'_>], rounds: usize, batch: usize) -> Vec<Samples> {
    let mut samples: Vec<Samples> = benches
        .iter()
        .map(|b| Samples {
            name: b.name,
            micros: Vec::with_capacity(rounds * batch),
        })
        .collect();
    for bench in benches.iter_mut() {
        (0..batch).for_each(|_| (bench.run)());
    }
    for _ in 0..rounds {
        for (bench, out) in benches.iter_mut().zip(samples.iter_mut()) {
            for _ in 0..batch {
                let start = Instant::now();
                (bench.run)();
                out.micros.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    samples
}
