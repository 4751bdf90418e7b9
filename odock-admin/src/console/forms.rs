//! Form fields with their labels, the values sent back and the error next to the field it blames.
//!
//! Every form is validated on the server: the console checks what it converts (dollars to nanos,
//! dates), the API checks the rest and names the field at fault (`error.field`), and the form is
//! shown again with the values kept and the message beside that field (and in the summary at the
//! top, for screen readers and for errors no field owns).

use maud::{html, Markup};

use super::client::Answer;
use super::session::Fields;

/// What a form shows: the values sent and the error to report.
#[derive(Debug, Clone, Default)]
pub struct FormState {
    /// The values sent, shown again.
    pub fields: Fields,
    /// `(field, message)`; the field is `None` when no field is at fault.
    pub error: Option<(Option<String>, String)>,
    /// Open the form's disclosure (it was sent and failed).
    pub open: bool,
    /// Prefix of the field ids, for a second form on a page with the same field names.
    pub id_prefix: &'static str,
}

impl FormState {
    /// The state of a sent form, open and without an error yet.
    pub fn sent(fields: Fields) -> Self {
        Self {
            fields,
            error: None,
            open: true,
            id_prefix: "",
        }
    }

    /// The same form with its field ids prefixed (`f-{prefix}{name}`).
    pub fn ids(mut self, prefix: &'static str) -> Self {
        self.id_prefix = prefix;
        self
    }

    /// The form sent, failing with `message` on `field`.
    pub fn failed(fields: Fields, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            fields,
            error: Some((field.map(str::to_owned), message.into())),
            open: true,
            id_prefix: "",
        }
    }

    /// The form sent, failing as the API answered.
    pub fn from_answer(fields: Fields, answer: &Answer) -> Self {
        Self::failed(fields, answer.field(), answer.message())
    }

    fn value(&self, name: &str) -> &str {
        self.fields.get(name)
    }

    fn error_for(&self, name: &str) -> Option<&str> {
        match &self.error {
            Some((Some(field), message)) if field == name => Some(message),
            _ => None,
        }
    }

    /// The error summary at the top of the form.
    pub fn summary(&self) -> Markup {
        html! {
            @if let Some((_, message)) = &self.error {
                div.error-summary role="alert" {
                    strong { "The form has a problem: " }
                    (message)
                }
            }
        }
    }
}

fn id_of(state: &FormState, name: &str) -> String {
    format!(
        "f-{}{}",
        state.id_prefix,
        name.replace(['.', '[', ']'], "-")
    )
}

fn described(state: &FormState, name: &str, help: Option<&str>) -> Option<String> {
    let mut ids = Vec::new();
    if help.is_some() {
        ids.push(format!("{}-help", id_of(state, name)));
    }
    if state.error_for(name).is_some() {
        ids.push(format!("{}-error", id_of(state, name)));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn after(state: &FormState, name: &str, help: Option<&str>) -> Markup {
    let id = id_of(state, name);
    html! {
        @if let Some(help) = help { small.help id={ (id) "-help" } { (help) } }
        @if let Some(error) = state.error_for(name) { small.field-error id={ (id) "-error" } { (error) } }
    }
}

/// A text-like input (`kind`: text, email, password, number, datetime-local, url).
pub fn input(
    state: &FormState,
    name: &str,
    label: &str,
    kind: &str,
    required: bool,
    help: Option<&str>,
) -> Markup {
    let id = id_of(state, name);
    // Passwords and secrets are never sent back into the page.
    let value = if kind == "password" {
        ""
    } else {
        state.value(name)
    };
    html! {
        div.field.invalid[state.error_for(name).is_some()] {
            label for=(id) { (label) @if required { span.req aria-hidden="true" { " *" } } }
            input id=(id) name=(name) type=(kind) value=(value) required[required]
                autocomplete=[(kind == "password").then_some("off")]
                aria-invalid=[state.error_for(name).map(|_| "true")]
                aria-describedby=[described(state, name, help)];
            (after(state, name, help))
        }
    }
}

/// A text input with a default value when the form was not sent yet.
pub fn input_default(
    state: &FormState,
    name: &str,
    label: &str,
    default: &str,
    help: Option<&str>,
) -> Markup {
    let mut state = state.clone();
    if !state.fields.0.iter().any(|(n, _)| n == name) {
        state.fields.0.push((name.to_owned(), default.to_owned()));
    }
    input(&state, name, label, "text", false, help)
}

/// A multi-line input.
pub fn textarea(state: &FormState, name: &str, label: &str, help: Option<&str>) -> Markup {
    let id = id_of(state, name);
    html! {
        div.field.invalid[state.error_for(name).is_some()] {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="3"
                aria-invalid=[state.error_for(name).map(|_| "true")]
                aria-describedby=[described(state, name, help)] { (state.value(name)) }
            (after(state, name, help))
        }
    }
}

/// A select of `(value, label)` options; the first is chosen unless the form sent another.
pub fn select(
    state: &FormState,
    name: &str,
    label: &str,
    options: &[(String, String)],
    help: Option<&str>,
) -> Markup {
    let id = id_of(state, name);
    let chosen = state.value(name);
    html! {
        div.field.invalid[state.error_for(name).is_some()] {
            label for=(id) { (label) }
            select id=(id) name=(name)
                aria-invalid=[state.error_for(name).map(|_| "true")]
                aria-describedby=[described(state, name, help)] {
                @for (value, text) in options {
                    option value=(value) selected[value == chosen] { (text) }
                }
            }
            (after(state, name, help))
        }
    }
}

/// A checkbox (checked by `default` until the form is sent).
pub fn checkbox(state: &FormState, name: &str, label: &str, default: bool) -> Markup {
    let id = id_of(state, name);
    let checked = if state.fields.0.is_empty() {
        default
    } else {
        state.fields.checked(name)
    };
    html! {
        div.field.check {
            input id=(id) name=(name) type="checkbox" value="on" checked[checked];
            label for=(id) { (label) }
            @if let Some(error) = state.error_for(name) { small.field-error { (error) } }
        }
    }
}

/// A group of checkboxes sharing `name` (one value each).
pub fn checkboxes(
    state: &FormState,
    name: &str,
    legend: &str,
    options: &[(String, String)],
) -> Markup {
    let chosen = state.fields.all(name);
    html! {
        fieldset.field.invalid[state.error_for(name).is_some()] {
            legend { (legend) }
            @if options.is_empty() { p.help { "Nothing to choose from yet." } }
            @for (i, (value, text)) in options.iter().enumerate() {
                @let id = format!("{}-{i}", id_of(state, name));
                div.check {
                    input id=(id) name=(name) type="checkbox" value=(value) checked[chosen.contains(&value.as_str())];
                    label for=(id) { (text) }
                }
            }
            @if let Some(error) = state.error_for(name) { small.field-error { (error) } }
        }
    }
}

/// `(value, label)` options from string constants.
pub fn options(values: &[&str]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|v| ((*v).to_owned(), (*v).to_owned()))
        .collect()
}
