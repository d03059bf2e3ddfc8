//! The REPL's `:` commands: their names, arguments and help, and how a line
//! is read as one. The completer, the highlighter and `:help` take them from
//! here; [`super::input`] carries them out.

use std::fmt;

/// A `:` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColonCommand {
    /// `:help [topic]`.
    Help,
    /// `:probes`.
    Probes,
    /// `:list [pattern]`.
    List,
    /// `:detach ID|NAME|all`.
    Detach,
    /// `:maps`.
    Maps,
    /// `:clear NAME`.
    Clear,
    /// `:load FILE.rhai`.
    Load,
    /// `:save FILE.rhai`.
    Save,
    /// `:lab [up [SPEC]|down]`.
    Lab,
    /// `:quit`.
    Quit,
}

/// Whether a command takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Argument {
    /// None may follow it.
    None,
    /// One may follow it.
    Optional,
    /// It needs one.
    Required,
}

impl ColonCommand {
    /// Every command, in the order `:help` lists them.
    pub const ALL: [ColonCommand; 10] = [
        ColonCommand::Help,
        ColonCommand::Probes,
        ColonCommand::List,
        ColonCommand::Detach,
        ColonCommand::Maps,
        ColonCommand::Clear,
        ColonCommand::Load,
        ColonCommand::Save,
        ColonCommand::Lab,
        ColonCommand::Quit,
    ];

    /// `:name`, as typed.
    pub fn name(self) -> &'static str {
        match self {
            ColonCommand::Help => ":help",
            ColonCommand::Probes => ":probes",
            ColonCommand::List => ":list",
            ColonCommand::Detach => ":detach",
            ColonCommand::Maps => ":maps",
            ColonCommand::Clear => ":clear",
            ColonCommand::Load => ":load",
            ColonCommand::Save => ":save",
            ColonCommand::Lab => ":lab",
            ColonCommand::Quit => ":quit",
        }
    }

    /// The name without its colon, as a `:help` topic.
    pub fn topic(self) -> &'static str {
        &self.name()[1..]
    }

    /// Its arguments, for help.
    pub fn args(self) -> &'static str {
        match self {
            ColonCommand::Help => "[topic]",
            ColonCommand::List => "[pattern]",
            ColonCommand::Detach => "ID|NAME|all",
            ColonCommand::Clear => "NAME",
            ColonCommand::Load => "NAME|FILE.rhai",
            ColonCommand::Save => "FILE.rhai",
            ColonCommand::Lab => "[up [SPEC]|down]",
            ColonCommand::Probes | ColonCommand::Maps | ColonCommand::Quit => "",
        }
    }

    /// What it does.
    pub fn about(self) -> &'static str {
        match self {
            ColonCommand::Help => "this help, or help on a command, function or attach point",
            ColonCommand::Probes => "attached probes (mechanism, filters, counts) and timers",
            ColonCommand::List => "the attach points and their fields",
            ColonCommand::Detach => {
                "detach a probe (an id from :probes, a probe or aggregation name) or stop a timer (t1)"
            }
            ColonCommand::Maps => "print every aggregation",
            ColonCommand::Clear => "empty an aggregation",
            ColonCommand::Load => {
                "run a script into the session: a name `vprobe scripts` lists, or a file"
            }
            ColonCommand::Save => {
                "write the session as a script: what is still attached, armed or defined"
            }
            ColonCommand::Lab => {
                "the session's lab: up builds one (SPEC: TOPOLOGY[:knob=value,…], default macvtap; :help lab), down removes it; bare: what is up"
            }
            ColonCommand::Quit => "end the session: print the summary, detach everything",
        }
    }

    /// Whether it takes an argument.
    pub fn argument(self) -> Argument {
        match self {
            ColonCommand::Help | ColonCommand::List | ColonCommand::Lab => Argument::Optional,
            ColonCommand::Detach
            | ColonCommand::Clear
            | ColonCommand::Load
            | ColonCommand::Save => Argument::Required,
            ColonCommand::Probes | ColonCommand::Maps | ColonCommand::Quit => Argument::None,
        }
    }

    /// The command called `name` (with its colon).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Reads a `:` line (trimmed): the command and its argument (trimmed,
    /// empty when there is none).
    pub fn parse(line: &str) -> Result<(Self, &str), ColonError> {
        let (name, arg) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (line, ""),
        };
        let Some(command) = Self::named(name) else {
            let suggestion =
                vprobe_engine::probes::suggest(name, Self::ALL.into_iter().map(Self::name));
            return Err(ColonError::Unknown {
                name: name.to_string(),
                suggestion,
            });
        };
        match command.argument() {
            Argument::Required if arg.is_empty() => Err(ColonError::NeedsArgument(command)),
            Argument::None if !arg.is_empty() => Err(ColonError::TakesNoArgument(command)),
            _ => Ok((command, arg)),
        }
    }
}

/// A `:` line that is not a command the REPL can carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColonError {
    /// No command has this name.
    Unknown {
        /// The name typed.
        name: String,
        /// The command it is closest to, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The command needs an argument and has none.
    NeedsArgument(ColonCommand),
    /// The command takes no argument and has one.
    TakesNoArgument(ColonCommand),
}

impl fmt::Display for ColonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColonError::Unknown { name, suggestion } => {
                write!(f, "unknown command `{name}`")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => write!(f, "; :help lists the commands"),
                }
            }
            ColonError::NeedsArgument(c) => write!(
                f,
                "{} needs an argument: {} {}",
                c.name(),
                c.name(),
                c.args()
            ),
            ColonError::TakesNoArgument(c) => write!(f, "{} takes no argument", c.name()),
        }
    }
}

/// What `:lab` is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabAction<'a> {
    /// `:lab` or `:lab status`: say what is up.
    Status,
    /// `:lab up [SPEC]`: build one (the spec, `macvtap` when none is given).
    Up(&'a str),
    /// `:lab down`: take it down.
    Down,
}

impl<'a> LabAction<'a> {
    /// The words `:lab` takes first, with what each does (for completion).
    pub const WORDS: [(&'static str, &'static str); 3] = [
        ("up", "build a lab: up [TOPOLOGY[:knob=value,…]]"),
        ("down", "take the session's lab down"),
        ("status", "what lab is up"),
    ];

    /// Reads the argument of `:lab`; `None` when it is none of the actions.
    pub fn parse(arg: &'a str) -> Option<Self> {
        let (word, rest) = match arg.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (arg, ""),
        };
        match (word, rest) {
            ("" | "status", "") => Some(LabAction::Status),
            ("up", "") => Some(LabAction::Up("macvtap")),
            ("up", spec) => Some(LabAction::Up(spec)),
            ("down", "") => Some(LabAction::Down),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_command() {
        for c in ColonCommand::ALL {
            assert_eq!(ColonCommand::named(c.name()), Some(c));
            assert_eq!(c.name(), format!(":{}", c.topic()));
        }
        assert_eq!(ColonCommand::named("probes"), None);
    }

    #[test]
    fn lines_give_the_command_and_its_argument() {
        assert_eq!(
            ColonCommand::parse(":detach  drops "),
            Ok((ColonCommand::Detach, "drops"))
        );
        assert_eq!(ColonCommand::parse(":help"), Ok((ColonCommand::Help, "")));
        assert_eq!(
            ColonCommand::parse(":lab up veth"),
            Ok((ColonCommand::Lab, "up veth"))
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let e = |line| ColonCommand::parse(line).unwrap_err().to_string();
        assert_eq!(
            e(":prbes"),
            "unknown command `:prbes`; did you mean `:probes`?"
        );
        assert_eq!(
            e(":zzzzzz"),
            "unknown command `:zzzzzz`; :help lists the commands"
        );
        assert_eq!(e(":clear"), ":clear needs an argument: :clear NAME");
        assert_eq!(e(":maps x"), ":maps takes no argument");
    }

    #[test]
    fn lab_actions() {
        assert_eq!(LabAction::parse(""), Some(LabAction::Status));
        assert_eq!(LabAction::parse("status"), Some(LabAction::Status));
        assert_eq!(LabAction::parse("up"), Some(LabAction::Up("macvtap")));
        assert_eq!(
            LabAction::parse("up  veth:qlen=8"),
            Some(LabAction::Up("veth:qlen=8"))
        );
        assert_eq!(LabAction::parse("down"), Some(LabAction::Down));
        assert_eq!(LabAction::parse("down now"), None);
        assert_eq!(LabAction::parse("sideways"), None);
    }
}
