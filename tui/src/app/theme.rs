//! Themes (F11.2): standard, high contrast, and colour-blind safe (the Okabe-Ito
//! palette). Colour is never the only signal: the selection also has a `▶` marker and
//! bold, states carry words (`[masqué]`, `hors ligne`), charts have labelled axes.

use ratatui::style::{Color, Modifier, Style};
use serde::{Deserialize, Serialize};

/// A theme's name, as Settings cycles them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThemeName {
    /// Muted colours on the terminal's background.
    #[default]
    Standard,
    /// White on black, reverse video for the selection.
    HighContrast,
    /// Blue and orange, distinguishable with any colour vision.
    ColourBlind,
}

impl ThemeName {
    /// Every theme, in the order Settings cycles them.
    pub const ALL: [ThemeName; 3] = [
        ThemeName::Standard,
        ThemeName::HighContrast,
        ThemeName::ColourBlind,
    ];

    /// The catalogue key of its name.
    pub fn key(self) -> &'static str {
        match self {
            ThemeName::Standard => "settings.theme_standard",
            ThemeName::HighContrast => "settings.theme_contrast",
            ThemeName::ColourBlind => "settings.theme_colourblind",
        }
    }

    /// The next one.
    pub fn next(self) -> ThemeName {
        let i = Self::ALL.iter().position(|t| *t == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// The styles a theme gives each role.
#[derive(Clone, Copy, Debug)]
pub struct Theme {
    /// Ordinary text.
    pub text: Style,
    /// Less important text (dates, counts).
    pub muted: Style,
    /// Section titles and the current tab.
    pub title: Style,
    /// The selected item (with the `▶` marker).
    pub selected: Style,
    /// Borders of the focused section.
    pub focus: Style,
    /// Borders of the others.
    pub border: Style,
    /// Warnings and offline state (with words).
    pub warn: Style,
    /// Good state (online).
    pub ok: Style,
    /// Chart line.
    pub chart: Style,
}

impl Theme {
    /// The styles of a theme.
    pub fn of(name: ThemeName) -> Theme {
        let s = Style::default;
        match name {
            ThemeName::Standard => Theme {
                text: s(),
                muted: s().fg(Color::DarkGray),
                title: s().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                selected: s()
                    .bg(Color::Blue)
                    .fg(Color::White)
                    .add_modifier(Modifier::BOLD),
                focus: s().fg(Color::Cyan),
                border: s().fg(Color::DarkGray),
                warn: s().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ok: s().fg(Color::Green),
                chart: s().fg(Color::Cyan),
            },
            ThemeName::HighContrast => Theme {
                text: s().fg(Color::White).bg(Color::Black),
                muted: s().fg(Color::White).bg(Color::Black),
                title: s()
                    .fg(Color::White)
                    .bg(Color::Black)
                    .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                selected: s()
                    .fg(Color::Black)
                    .bg(Color::White)
                    .add_modifier(Modifier::BOLD),
                focus: s().fg(Color::White).add_modifier(Modifier::BOLD),
                border: s().fg(Color::White),
                warn: s()
                    .fg(Color::White)
                    .bg(Color::Black)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED),
                ok: s().fg(Color::White).add_modifier(Modifier::BOLD),
                chart: s().fg(Color::White),
            },
            ThemeName::ColourBlind => Theme {
                text: s(),
                muted: s().fg(Color::Rgb(0x99, 0x99, 0x99)),
                title: s()
                    .fg(Color::Rgb(0x56, 0xB4, 0xE9))
                    .add_modifier(Modifier::BOLD),
                selected: s()
                    .bg(Color::Rgb(0x00, 0x72, 0xB2))
                    .fg(Color::White)
                    .add_modifier(Modifier::BOLD),
                focus: s().fg(Color::Rgb(0x56, 0xB4, 0xE9)),
                border: s().fg(Color::Rgb(0x99, 0x99, 0x99)),
                warn: s()
                    .fg(Color::Rgb(0xE6, 0x9F, 0x00))
                    .add_modifier(Modifier::BOLD),
                ok: s().fg(Color::Rgb(0x00, 0x9E, 0x73)),
                chart: s().fg(Color::Rgb(0xE6, 0x9F, 0x00)),
            },
        }
    }
}
