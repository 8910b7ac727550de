//! A live todo list, the seed's `TodoListComponent`: add, toggle, delete,
//! filter, clear completed. The text being typed is state too (`draft`), so
//! a reconnect or a hot reload keeps it. Mounted by `<div data-live="todo">`.

use serde::{Deserialize, Serialize};
use switchboard_sdk::html;
use switchboard_sdk::live::{Ctx, Error, Event, Html, LiveComponent, Props};

/// Todos one list may hold.
const MAX_TODOS: usize = 500;
/// Longest todo, in characters.
const MAX_TEXT: usize = 200;

#[derive(Serialize, Deserialize)]
struct Todo {
    id: u64,
    text: String,
    done: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
enum Filter {
    All,
    Active,
    Completed,
}

#[derive(Serialize, Deserialize)]
struct TodoList {
    todos: Vec<Todo>,
    next_id: u64,
    filter: Filter,
    draft: String,
}

impl TodoList {
    fn add(&mut self, text: &str) -> Result<(), Error> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!("a todo is at most {MAX_TEXT} characters").into());
        }
        if self.todos.len() >= MAX_TODOS {
            return Err(format!("a list holds at most {MAX_TODOS} todos").into());
        }
        self.next_id += 1;
        self.todos.push(Todo { id: self.next_id, text: text.to_owned(), done: false });
        self.draft.clear();
        Ok(())
    }

    fn shown(&self, todo: &Todo) -> bool {
        match self.filter {
            Filter::All => true,
            Filter::Active => !todo.done,
            Filter::Completed => todo.done,
        }
    }

    fn filter_button(&self, filter: Filter, name: &'static str, label: &'static str) -> Html {
        html!(
            r#"<button class="{}" data-on-click="filter" data-val-filter="{}">{}</button>"#,
            if self.filter == filter { "active" } else { "" },
            name,
            label
        )
    }
}

impl LiveComponent for TodoList {
    const NAME: &'static str = "todo";

    fn mount(_: &mut Ctx, props: &Props) -> Result<Self, Error> {
        let mut list = TodoList { todos: Vec::new(), next_id: 0, filter: Filter::All, draft: String::new() };
        for text in props.get::<Vec<String>>("todos").unwrap_or_default() {
            list.add(&text)?;
        }
        Ok(list)
    }

    fn render(&self) -> Html {
        let rows = Html::list(self.todos.iter().filter(|todo| self.shown(todo)).map(|todo| {
            let row = html!(
                r#"<li class="{}"><input type="checkbox" {} data-on-change="toggle" data-val-id="{}"> <span class="text">{}</span> <button class="delete" data-on-click="delete" data-val-id="{}" title="Delete">×</button></li>"#,
                if todo.done { "completed" } else { "" },
                if todo.done { "checked" } else { "" },
                todo.id,
                &todo.text,
                todo.id
            );
            (todo.id, row)
        }));
        let left = self.todos.iter().filter(|todo| !todo.done).count();
        let clear = if self.todos.iter().any(|todo| todo.done) {
            html!(r#"<button class="clear" data-on-click="clear_completed">Clear completed</button>"#)
        } else {
            Html::empty()
        };
        html!(
            r#"<div class="todo"><form class="add" data-on-submit="add"><input class="new" name="text" placeholder="What needs doing?" autocomplete="off" value="{}" data-on-input="draft" data-debounce="100"> <button>Add</button></form>
<ul class="todo-list">{}</ul>
<div class="filters">{}{}{}</div>
<div class="stats"><span class="left">{} left</span> {}</div>
<p class="flash" data-live-flash></p></div>"#,
            &self.draft,
            rows,
            self.filter_button(Filter::All, "all", "All"),
            self.filter_button(Filter::Active, "active", "Active"),
            self.filter_button(Filter::Completed, "completed", "Completed"),
            left,
            clear
        )
    }

    fn on_event(&mut self, _: &mut Ctx, event: &Event) -> Result<(), Error> {
        let id = || event.value("id").and_then(|id| id.parse::<u64>().ok());
        match event.name.as_str() {
            "draft" => self.draft = event.value("value").unwrap_or_default().chars().take(MAX_TEXT).collect(),
            "add" => self.add(event.field("text").unwrap_or_default())?,
            "toggle" => {
                if let Some(todo) = self.todos.iter_mut().find(|todo| Some(todo.id) == id()) {
                    todo.done = !todo.done;
                }
            }
            "delete" => self.todos.retain(|todo| Some(todo.id) != id()),
            "clear_completed" => self.todos.retain(|todo| !todo.done),
            "filter" => {
                self.filter = match event.value("filter") {
                    Some("active") => Filter::Active,
                    Some("completed") => Filter::Completed,
                    _ => Filter::All,
                };
            }
            other => return Err(format!("no event {other}").into()),
        }
        Ok(())
    }
}

switchboard_sdk::export_live!("todo", TodoList);

#[cfg(test)]
mod tests;
