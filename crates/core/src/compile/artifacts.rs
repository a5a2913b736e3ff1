//! `artifacts:`: patterns that stay in the working directory, downloads from upstream tasks
//! that upload something, and only on tasks that have a working directory.

use crate::decode::Decoder;
use crate::diagnostic::did_you_mean;
use crate::ids::TaskId;
use crate::model::{Action, Artifacts, check_pattern};
use crate::spec::TaskSpec;

use super::Compiler;
use super::templates::{Scope, TaskAccess};

impl Compiler<'_> {
    pub(super) fn artifacts(
        &self,
        d: &mut Decoder,
        t: &TaskSpec,
        action: Option<&Action>,
        scope: Scope<'_>,
    ) -> Artifacts {
        let Some(spec) = &t.artifacts else {
            return Artifacts::default();
        };
        d.at("artifacts", |d| {
            let why_not = match action {
                Some(Action::Http(_)) => Some("an `http` step has no working directory"),
                Some(Action::Pipeline { .. }) => Some("a sub-pipeline's own tasks move files"),
                Some(Action::Gate) => Some("a gate runs nothing"),
                _ => None,
            };
            if let Some(why) = why_not {
                d.error(
                    spec.span,
                    format!("`artifacts` needs a command or a container: {why}"),
                )
                .hint = Some("move the files with the task that makes or uses them".into());
                return Artifacts::default();
            }
            if t.cache.is_some() && !spec.value.upload.is_empty() {
                d.error(
                    spec.span,
                    "`artifacts.upload` cannot be combined with `cache`: a cached result keeps \
                     outputs, not files",
                )
                .hint = Some("remove `cache`, or have a task downstream make the files".into());
            }
            let upload = d.at("upload", |d| {
                let mut out: Vec<String> = Vec::new();
                for (i, p) in spec.value.upload.iter().enumerate() {
                    d.at(format!("[{i}]"), |d| match check_pattern(&p.value) {
                        Ok(()) if !out.contains(&p.value) => out.push(p.value.clone()),
                        Ok(()) => {}
                        Err(e) => {
                            d.error(p.span, e).hint =
                                Some("e.g. `dist/*.tar.gz`, `reports/**` or `build`".into());
                        }
                    });
                }
                out
            });
            let download = d.at("download", |d| {
                let mut out: Vec<TaskId> = Vec::new();
                for (i, name) in spec.value.download.iter().enumerate() {
                    d.at(format!("[{i}]"), |d| {
                        if let Err((msg, hint)) = self.check_download(&name.value, scope) {
                            d.error(name.span, msg).hint = hint;
                            return;
                        }
                        if let Ok(id) = TaskId::new(name.value.clone())
                            && !out.contains(&id)
                        {
                            out.push(id);
                        }
                    });
                }
                out
            });
            Artifacts { upload, download }
        })
    }

    /// Why the current task cannot download from `name`.
    fn check_download(&self, name: &str, scope: Scope<'_>) -> Result<(), (String, Option<String>)> {
        let Some(&idx) = self.task_names.get(name) else {
            return Err((
                format!("unknown task `{name}`"),
                did_you_mean(name, self.task_names.keys().copied()),
            ));
        };
        if let TaskAccess::Upstream(current, i) = scope.tasks {
            // Without a DAG (a cycle was reported) upstream-ness is unknown; don't pile on.
            let upstream = self
                .dag
                .as_ref()
                .is_none_or(|g| self.ancestry.is_ancestor(g, idx, i));
            if !upstream || current == name {
                return Err((
                    format!("task `{name}` is not upstream of `{current}`"),
                    Some(format!("add `{name}` to the `needs` of `{current}`")),
                ));
            }
        }
        let uploads = self
            .spec
            .tasks
            .get_index(idx)
            .and_then(|(_, t)| t.artifacts.as_ref())
            .is_some_and(|a| !a.value.upload.is_empty());
        if !uploads {
            return Err((
                format!("task `{name}` uploads no artifacts"),
                Some(format!(
                    "add `artifacts: {{ upload: [PATTERN] }}` to task `{name}`"
                )),
            ));
        }
        Ok(())
    }
}
