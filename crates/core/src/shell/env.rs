//! The environment variables through which a script reads values without templates:
//! `BATON_PARAM_<NAME>`, `BATON_OUTPUT_<TASK>_<NAME>`, `BATON_ITEM`.

/// `BATON_PARAM_<NAME>` for a param.
pub fn param_var(name: &str) -> String {
    format!("BATON_PARAM_{}", upper(name))
}

/// `BATON_OUTPUT_<TASK>_<NAME>` for an upstream task's output.
pub fn output_var(task: &str, output: &str) -> String {
    format!("BATON_OUTPUT_{}_{}", upper(task), upper(output))
}

/// Uppercase, with every character a shell name cannot hold as `_`.
fn upper(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shell_names() {
        assert_eq!(param_var("who"), "BATON_PARAM_WHO");
        assert_eq!(param_var("max-lag.h"), "BATON_PARAM_MAX_LAG_H");
        assert_eq!(
            output_var("prepare-data", "rows"),
            "BATON_OUTPUT_PREPARE_DATA_ROWS"
        );
    }
}
