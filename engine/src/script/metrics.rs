//! `metric(name, #{name, help, unit, scale})`: how an aggregation or a
//! report appears at `--metrics` (its metric name, help text, unit, and the
//! factor from the field's unit to that unit).

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::convert::{agg_name, describe, want_string};
use super::errors::{fail, OrFail, Res};
use super::state::State;
use crate::plan::MetricDesc;

const KEYS: [&str; 4] = ["name", "help", "unit", "scale"];

/// Registers `metric`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    engine.register_fn(
        "metric",
        move |ctx: NativeCallContext, name: Dynamic, desc: Map| -> Res<()> {
            // an aggregation handle or the name of an aggregation or report
            let name = agg_name(&name).or_fail(&ctx)?.as_str().to_string();
            let mut d = MetricDesc::default();
            for (k, v) in &desc {
                let text = |what: &str| want_string(v, &format!("metric: `{what}`")).or_fail(&ctx);
                match k.as_str() {
                    "name" => d.name = Some(text("name")?),
                    "help" => d.help = Some(text("help")?),
                    "unit" => d.unit = Some(text("unit")?),
                    "scale" => {
                        let x = v
                            .as_float()
                            .ok()
                            .or_else(|| v.as_int().ok().map(|i| i as f64))
                            .filter(|x| x.is_finite() && *x > 0.0);
                        d.scale = Some(x.ok_or_else(|| {
                            fail(
                                &ctx,
                                format!(
                                    "metric: `scale` must be a positive number, got {}",
                                    describe(v)
                                ),
                            )
                        })?);
                    }
                    other => {
                        return Err(fail(
                            &ctx,
                            format!("metric: unknown key `{other}` (known: {})", KEYS.join(", ")),
                        ))
                    }
                }
            }
            s.borrow_mut().metrics.push((name, d));
            Ok(())
        },
    );
}
