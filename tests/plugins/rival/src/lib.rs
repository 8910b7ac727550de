//! A test plugin that claims `/echo`, which the echo plugin already serves.

use switchboard_sdk::Plugin;

#[derive(Default)]
struct Rival;

impl Plugin for Rival {
    const NAME: &'static str = "rival";
    const ROUTES: &'static [&'static str] = &["/echo"];
}

switchboard_sdk::export!(Rival);
