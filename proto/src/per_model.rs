//! One value per slot model. [`SlotModel`] names the three models a slot
//! can have — the wire [`Model`] also has `Unspecified` and `Auto`, which
//! no slot has — and [`PerModel<T>`] holds one `T` for each, indexed by
//! them. Indexing cannot fail: code that has a wire `Model` converts it
//! first (`SlotModel::try_from`) and decides there what an invalid one
//! means, instead of every lookup panicking or skipping.

use std::ops::{Index, IndexMut};

use crate::v1::Model;

/// A model a slot can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotModel {
    Process,
    Thread,
    Async,
}

impl SlotModel {
    /// The three models, in display order.
    pub const ALL: [SlotModel; 3] = [SlotModel::Process, SlotModel::Thread, SlotModel::Async];

    /// The user-facing name (`process`, `thread`, `async`).
    pub fn name(self) -> &'static str {
        Model::from(self).name()
    }

    /// The slot model of a wire value; `None` for `Unspecified`, `Auto`
    /// and values this build does not know.
    pub fn from_wire(model: i32) -> Option<SlotModel> {
        Model::try_from(model)
            .ok()
            .and_then(|m| SlotModel::try_from(m).ok())
    }
}

impl From<SlotModel> for Model {
    fn from(m: SlotModel) -> Model {
        match m {
            SlotModel::Process => Model::Process,
            SlotModel::Thread => Model::Thread,
            SlotModel::Async => Model::Async,
        }
    }
}

impl TryFrom<Model> for SlotModel {
    /// The model, which no slot has (`Unspecified` or `Auto`).
    type Error = Model;

    fn try_from(m: Model) -> Result<SlotModel, Model> {
        match m {
            Model::Process => Ok(SlotModel::Process),
            Model::Thread => Ok(SlotModel::Thread),
            Model::Async => Ok(SlotModel::Async),
            Model::Unspecified | Model::Auto => Err(m),
        }
    }
}

/// One `T` per slot model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PerModel<T> {
    pub process: T,
    pub thread: T,
    pub async_: T,
}

impl<T> PerModel<T> {
    /// The value of each model is `f(model)`.
    pub fn from_fn(mut f: impl FnMut(SlotModel) -> T) -> Self {
        PerModel {
            process: f(SlotModel::Process),
            thread: f(SlotModel::Thread),
            async_: f(SlotModel::Async),
        }
    }

    /// Each model with its value, in [`SlotModel::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotModel, &T)> {
        SlotModel::ALL.into_iter().zip(self.values())
    }

    /// The values, in [`SlotModel::ALL`] order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        [&self.process, &self.thread, &self.async_].into_iter()
    }

    /// The values, mutable, in [`SlotModel::ALL`] order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        [&mut self.process, &mut self.thread, &mut self.async_].into_iter()
    }

    /// Applies `f` to each model's value.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerModel<U> {
        PerModel {
            process: f(self.process),
            thread: f(self.thread),
            async_: f(self.async_),
        }
    }
}

impl<T> Index<SlotModel> for PerModel<T> {
    type Output = T;

    fn index(&self, m: SlotModel) -> &T {
        match m {
            SlotModel::Process => &self.process,
            SlotModel::Thread => &self.thread,
            SlotModel::Async => &self.async_,
        }
    }
}

impl<T> IndexMut<SlotModel> for PerModel<T> {
    fn index_mut(&mut self, m: SlotModel) -> &mut T {
        match m {
            SlotModel::Process => &mut self.process,
            SlotModel::Thread => &mut self.thread,
            SlotModel::Async => &mut self.async_,
        }
    }
}

/// `[process, thread, async]`.
impl<T> From<[T; 3]> for PerModel<T> {
    fn from([process, thread, async_]: [T; 3]) -> Self {
        PerModel {
            process,
            thread,
            async_,
        }
    }
}

/// `[process, thread, async]`.
impl<T> From<PerModel<T>> for [T; 3] {
    fn from(p: PerModel<T>) -> [T; 3] {
        [p.process, p.thread, p.async_]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_models_round_trip_through_the_wire_model() {
        for m in SlotModel::ALL {
            assert_eq!(SlotModel::try_from(Model::from(m)), Ok(m));
            assert_eq!(SlotModel::from_wire(Model::from(m) as i32), Some(m));
            assert_eq!(m.name(), Model::from(m).name());
        }
        assert_eq!(SlotModel::try_from(Model::Auto), Err(Model::Auto));
        assert_eq!(
            SlotModel::try_from(Model::Unspecified),
            Err(Model::Unspecified)
        );
        assert_eq!(SlotModel::from_wire(Model::Auto as i32), None);
        assert_eq!(SlotModel::from_wire(42), None);
    }

    #[test]
    fn indexing_reaches_the_named_field_of_each_model() {
        let mut p = PerModel::from([1, 2, 3]);
        assert_eq!(
            (
                p[SlotModel::Process],
                p[SlotModel::Thread],
                p[SlotModel::Async]
            ),
            (1, 2, 3)
        );
        p[SlotModel::Thread] += 10;
        assert_eq!(p.thread, 12);
        assert_eq!(<[i32; 3]>::from(p), [1, 12, 3]);
        let names: Vec<(SlotModel, i32)> = p.iter().map(|(m, &v)| (m, v)).collect();
        assert_eq!(
            names,
            vec![
                (SlotModel::Process, 1),
                (SlotModel::Thread, 12),
                (SlotModel::Async, 3)
            ]
        );
        assert_eq!(p.map(|v| v * 2), PerModel::from([2, 24, 6]));
        assert_eq!(PerModel::from_fn(|m| m), PerModel::from(SlotModel::ALL));
        for v in p.values_mut() {
            *v = 0;
        }
        assert_eq!(p, PerModel::default());
    }
}
