//! Task names, as given to `monteur process --tasks` and in job messages.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One unit of work on an input. The names are a fixed interface: tools outside
/// the repository pass them on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    Scenes,
    Captions,
    Autocut,
    Render,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Scenes, Task::Captions, Task::Autocut, Task::Render];

    pub fn name(self) -> &'static str {
        match self {
            Task::Scenes => "scenes",
            Task::Captions => "captions",
            Task::Autocut => "autocut",
            Task::Render => "render",
        }
    }

    /// Whether this build can run the task.
    pub fn is_available(self) -> bool {
        true
    }

    /// Whether the task reads the audio stream.
    pub fn needs_audio(self) -> bool {
        matches!(self, Task::Captions | Task::Autocut)
    }

    /// Whether the task reads the video stream.
    pub fn needs_video(self) -> bool {
        matches!(self, Task::Scenes | Task::Render)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TaskError {
    #[error("unknown task `{0}` (tasks: scenes, captions, autocut, render)")]
    Unknown(String),
    #[error("task `{0}` is not available in this build (available: {1})")]
    Unavailable(Task, String),
    #[error("no task given")]
    Empty,
}

/// A set of tasks, kept in their canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSet(Vec<Task>);

impl TaskSet {
    /// Every task this build can run: the default when none is named.
    pub fn available() -> Self {
        Self(Task::ALL.into_iter().filter(|t| t.is_available()).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = Task> + '_ {
        self.0.iter().copied()
    }

    pub fn contains(&self, t: Task) -> bool {
        self.0.contains(&t)
    }
}

impl FromStr for TaskSet {
    type Err = TaskError;

    /// Parses a comma list (`scenes,render`); duplicates collapse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut tasks = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let task = Task::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| TaskError::Unknown(name.to_string()))?;
            if !task.is_available() {
                let available: Vec<&str> = TaskSet::available().iter().map(Task::name).collect();
                return Err(TaskError::Unavailable(task, available.join(", ")));
            }
            tasks.push(task);
        }
        if tasks.is_empty() {
            return Err(TaskError::Empty);
        }
        tasks.sort();
        tasks.dedup();
        Ok(Self(tasks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_in_canonical_order() {
        let set: TaskSet = " captions , scenes,scenes".parse().unwrap();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Task::Scenes, Task::Captions]
        );
    }

    #[test]
    fn rejects_unknown_and_empty() {
        assert_eq!(
            "scnes".parse::<TaskSet>(),
            Err(TaskError::Unknown("scnes".into()))
        );
        assert_eq!(",".parse::<TaskSet>(), Err(TaskError::Empty));
    }

    #[test]
    fn every_task_is_built() {
        let set: TaskSet = "render,autocut,captions,scenes".parse().unwrap();
        assert_eq!(set, TaskSet::available());
        assert_eq!(set.iter().collect::<Vec<_>>(), Task::ALL.to_vec());
    }
}
