//! A live counter: `+` and `−` by a step the user sets, a reset, and a run
//! of server ticks (each adds one) that shows the 16 ms batching at work.
//! Mounted by `<div data-live="counter" data-props='{"count":10}'>`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_sdk::html;
use switchboard_sdk::live::{Ctx, Error, Event, Html, Info, LiveComponent, Props};

#[derive(Serialize, Deserialize)]
struct Counter {
    count: i64,
    /// What `+` and `−` add.
    step: i64,
    /// Ticks still to come in the current run.
    ticks_left: u32,
    /// The ticks' period in milliseconds (prop `tick_ms`, default 10).
    tick_ms: u64,
}

impl LiveComponent for Counter {
    const NAME: &'static str = "counter";

    fn mount(_: &mut Ctx, props: &Props) -> Result<Self, Error> {
        Ok(Counter {
            count: props.get("count").unwrap_or(0),
            step: 1,
            ticks_left: 0,
            tick_ms: props.get("tick_ms").unwrap_or(10),
        })
    }

    fn render(&self) -> Html {
        html!(
            r#"<div class="counter"><output>{}</output>
<button class="dec" data-on-click="dec">−</button> <button class="inc" data-on-click="inc">+</button>
<label>Step <input class="step" name="step" type="number" min="1" max="1000" value="{}" data-on-change="step"></label>
<button class="reset" data-on-click="reset">Reset</button>
<button class="run" data-on-click="run" data-val-ticks="100">{}</button>
<p class="flash" data-live-flash></p></div>"#,
            self.count,
            self.step,
            if self.ticks_left > 0 { "Running…" } else { "Run 100 ticks" }
        )
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        match event.name.as_str() {
            "inc" => self.count = self.count.saturating_add(self.step),
            "dec" => self.count = self.count.saturating_sub(self.step),
            "reset" => self.count = 0,
            "step" => {
                self.step = event
                    .value("value")
                    .and_then(|value| value.trim().parse().ok())
                    .filter(|step| (1..=1000).contains(step))
                    .ok_or("the step is a whole number from 1 to 1000")?;
            }
            "run" => {
                self.ticks_left = event.value("ticks").and_then(|ticks| ticks.parse().ok()).unwrap_or(100).min(1000);
                ctx.every(Duration::from_millis(self.tick_ms));
            }
            other => return Err(format!("no event {other}").into()),
        }
        Ok(())
    }

    fn on_info(&mut self, ctx: &mut Ctx, info: &Info) {
        if *info == Info::Tick && self.ticks_left > 0 {
            self.count = self.count.saturating_add(1);
            self.ticks_left -= 1;
            if self.ticks_left == 0 {
                ctx.stop_timer();
            }
        }
    }
}

switchboard_sdk::export_live!("counter", Counter);

#[cfg(test)]
mod tests;
