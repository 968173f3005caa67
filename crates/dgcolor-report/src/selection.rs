//! Model selection over a sweep (DomainBed's `model_selection.py`): for each method, target
//! and trial, pick one hyperparameter draw and one evaluation point, then report its target
//! test metrics. Three rules, one table each:
//!
//! - training-domain validation: the (draw, point) with the best mean source-validation PSNR;
//! - test-domain oracle: the (draw, point) with the best PSNR on the target's held-out oracle
//!   share, which the test metrics never include (DomainBed's oracle looks at the last step
//!   only; here it may also stop early, like the validation rule);
//! - last step: the draw with the best source-validation PSNR at its last step, no early
//!   stopping.

use std::collections::BTreeMap;

use dgcolor_runs::{EvalSplit, Evaluation, Record, SELECTION_METRIC};

use crate::RunResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selection {
    TrainingDomainValidation,
    Oracle,
    LastStep,
}

impl Selection {
    pub const ALL: [Selection; 3] = [
        Selection::TrainingDomainValidation,
        Selection::Oracle,
        Selection::LastStep,
    ];

    pub fn slug(&self) -> &'static str {
        match self {
            Selection::TrainingDomainValidation => "val",
            Selection::Oracle => "oracle",
            Selection::LastStep => "last",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            Selection::TrainingDomainValidation => {
                "model selection: training-domain validation (best mean source-validation PSNR over draws and evaluation points)"
            }
            Selection::Oracle => {
                "model selection: test-domain oracle (best PSNR on the held-out 20% of the target, over draws and evaluation points)"
            }
            Selection::LastStep => {
                "model selection: last step (draw by source-validation PSNR at the last step)"
            }
        }
    }
}

/// The evaluation point a rule picked for one (method, target, trial).
#[derive(Clone, Copy, Debug)]
pub struct Selected<'a> {
    pub run: &'a RunResult,
    pub step: u64,
    pub test: &'a Evaluation,
}

impl RunResult {
    fn evaluations(&self) -> impl Iterator<Item = &Evaluation> {
        self.records.iter().filter_map(|r| match r {
            Record::Eval(e) => Some(e),
            _ => None,
        })
    }

    /// The target test evaluation at `step`.
    pub fn test_at(&self, step: u64) -> Option<&Evaluation> {
        self.evaluations()
            .find(|e| e.split == EvalSplit::Test && e.step == step)
    }

    /// The selection metric at `step`: averaged over the source-validation sets, or on the
    /// oracle set.
    fn score(&self, step: u64, split: EvalSplit) -> Option<f64> {
        let values: Vec<f64> = self
            .evaluations()
            .filter(|e| e.split == split && e.step == step)
            .filter_map(|e| e.result.value(SELECTION_METRIC))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Steps with a test evaluation, in order.
    fn steps(&self) -> Vec<u64> {
        let mut steps: Vec<u64> = self
            .evaluations()
            .filter(|e| e.split == EvalSplit::Test)
            .map(|e| e.step)
            .collect();
        steps.dedup();
        steps
    }

    fn last_step(&self) -> Option<u64> {
        self.records.iter().rev().find_map(|r| match r {
            Record::Final(e) => Some(e.step),
            _ => None,
        })
    }
}

/// The maximum of `score` over `candidates` (ties: the first, i.e. the lowest draw and
/// the earliest step).
fn argmax<'a>(
    candidates: impl Iterator<Item = (Selected<'a>, Option<f64>)>,
) -> Option<Selected<'a>> {
    candidates
        .filter_map(|(s, score)| Some((s, score?)))
        .fold(None, |best: Option<(Selected, f64)>, (s, v)| match best {
            Some((_, bv)) if bv >= v => best,
            _ => Some((s, v)),
        })
        .map(|(s, _)| s)
}

/// Applies `selection` to the runs of one (method, target, trial), one per draw.
pub fn select<'a>(selection: Selection, runs: &[&'a RunResult]) -> Option<Selected<'a>> {
    let points = || {
        runs.iter().flat_map(|&run| {
            run.steps().into_iter().filter_map(move |step| {
                Some(Selected {
                    run,
                    step,
                    test: run.test_at(step)?,
                })
            })
        })
    };
    match selection {
        Selection::TrainingDomainValidation => {
            argmax(points().map(|s| (s, s.run.score(s.step, EvalSplit::Val))))
        }
        Selection::Oracle => argmax(points().map(|s| (s, s.run.score(s.step, EvalSplit::Oracle)))),
        Selection::LastStep => argmax(runs.iter().filter_map(|&run| {
            let step = run.last_step()?;
            let s = Selected {
                run,
                step,
                test: run.test_at(step)?,
            };
            // A run without validation images still has a last step to report.
            Some((
                s,
                Some(run.score(step, EvalSplit::Val).unwrap_or(f64::NEG_INFINITY)),
            ))
        })),
    }
}

/// A row of a table: (row order, label).
pub type RowKey = (usize, String);

/// Every pick of one selection rule: row -> target -> trial seed -> the selected point.
pub type Picks<'a> = BTreeMap<RowKey, BTreeMap<String, BTreeMap<u64, Selected<'a>>>>;

/// Groups `runs` by (method, target, trial) and selects in each group.
pub fn picks<'a>(selection: Selection, runs: &[&'a RunResult]) -> Picks<'a> {
    let mut groups: BTreeMap<(RowKey, String, u64), Vec<&'a RunResult>> = BTreeMap::new();
    for &r in runs {
        groups
            .entry((
                (r.job.order, r.job.label.clone()),
                r.config.target.clone(),
                r.config.seed,
            ))
            .or_default()
            .push(r);
    }
    let mut out: Picks = BTreeMap::new();
    for ((row, target, trial), group) in groups {
        if let Some(s) = select(selection, &group) {
            out.entry(row)
                .or_default()
                .entry(target)
                .or_default()
                .insert(trial, s);
        }
    }
    out
}
