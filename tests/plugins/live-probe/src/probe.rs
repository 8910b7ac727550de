// The probe's code, shared by `live-probe` and `live-probe-v2`, which differ
// only in `BUILD` (shown as the root's `data-build`).

use serde::{Deserialize, Serialize};
use switchboard_sdk::html;
use switchboard_sdk::live::{Ctx, Error, Event, Html, Info, LiveComponent, Props};

#[derive(Serialize, Deserialize)]
struct Probe {
    count: u64,
    rows: Vec<u64>,
}

impl LiveComponent for Probe {
    const NAME: &'static str = "live-probe";

    fn mount(_: &mut Ctx, props: &Props) -> Result<Self, Error> {
        if props.get::<bool>("refuse") == Some(true) {
            return Err("refused on request".into());
        }
        let rows = props.get::<usize>("rows").unwrap_or(0).min(10_000);
        Ok(Probe { count: props.get("count").unwrap_or(0), rows: vec![0; rows] })
    }

    fn render(&self) -> Html {
        let rows = Html::list(
            self.rows.iter().enumerate().map(|(index, bumps)| (index, html!(r#"<tr><td>row {}</td><td class="n">{}</td><td><button class="bump" data-on-click="bump" data-val-row="{}">bump</button></td></tr>"#, index, bumps, index))),
        );
        html!(
            r#"<div class="probe" data-build="{}"><output>{}</output><button class="inc" data-on-click="inc">+</button><button class="crash" data-on-click="crash">crash</button><button class="push" data-on-click="push">push</button><button class="flash-me" data-on-click="flash">flash</button><button class="go" data-on-click="redirect">go</button><input class="key" data-on-keydown="inc" data-key-filter="Enter"><input class="typing" data-on-input="inc" data-debounce><p class="flash" data-live-flash></p><table>{}</table></div>"#,
            BUILD,
            self.count,
            rows
        )
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        match event.name.as_str() {
            "inc" => self.count += 1,
            "crash" => panic!("the probe crashes on request"),
            "flash" => ctx.flash("flashed"),
            "push" => ctx.push_event("poked", self.count),
            "redirect" => ctx.redirect("/elsewhere"),
            "subscribe" => {
                let rooms = event.value("rooms").and_then(|rooms| rooms.parse::<usize>().ok()).unwrap_or(1);
                let prefix = event.value("prefix").unwrap_or("room-");
                (0..rooms).for_each(|room| ctx.subscribe(&format!("{prefix}{room}")));
            }
            "echo" => {
                ctx.subscribe("echo");
                ctx.broadcast("echo", self.count);
            }
            "bump" => {
                let row = event.value("row").and_then(|row| row.parse::<usize>().ok()).ok_or("which row?")?;
                *self.rows.get_mut(row).ok_or("no such row")? += 1;
            }
            other => return Err(format!("no event {other}").into()),
        }
        Ok(())
    }

    fn on_info(&mut self, ctx: &mut Ctx, info: &Info) {
        if let Info::Message { room, .. } = info {
            self.count += 1;
            ctx.broadcast(room, self.count);
        }
    }
}

switchboard_sdk::export_live!("live-probe", Probe);
