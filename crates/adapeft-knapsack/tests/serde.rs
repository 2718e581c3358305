//! JSON round trips of the public data types (with the `serde` feature).
#![cfg(feature = "serde")]

use adapeft_knapsack::{
    Class, FrontData, FrontOptions, Item, ParetoFront, Pick, Solution, pareto_front,
    pareto_front_classes, pareto_front_with, solve,
};

#[test]
fn item_front_round_trips_through_json() {
    let items = [
        Item::new(3, 1.5),
        Item::new(0, 0.5),
        Item::new(7, 4.0),
        Item::new(2, 0.25),
    ];
    let front = pareto_front(&items).unwrap();
    let json = serde_json::to_string(&front).unwrap();
    let back: ParetoFront = serde_json::from_str(&json).unwrap();
    assert_eq!(back.to_data(), front.to_data());
    assert_eq!(back.best_within(9), front.best_within(9));

    let sol = solve(&items, 9).unwrap();
    let back: Solution = serde_json::from_str(&serde_json::to_string(&sol).unwrap()).unwrap();
    assert_eq!(back, sol);
    let item: Item = serde_json::from_str(r#"{"weight": 768, "value": 0.5}"#).unwrap();
    assert_eq!(item, Item::new(768, 0.5));
    let opts: FrontOptions =
        serde_json::from_str(r#"{"epsilon": 0.01, "max_weight": null}"#).unwrap();
    assert_eq!(opts, FrontOptions::new().with_epsilon(0.01));
}

#[test]
fn class_front_round_trips_and_bad_data_is_rejected() {
    let classes = [
        Class::new(vec![Item::new(10, 2.0), Item::new(1, 1.0)]),
        Class::new(vec![Item::new(4, 1.5)]),
    ];
    let front = pareto_front_classes(&classes).unwrap();
    let json = serde_json::to_string(&front).unwrap();
    let back: ParetoFront<Pick> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.to_data(), front.to_data());

    let mut data: FrontData<Pick> = front.to_data();
    data.points.reverse();
    let err = serde_json::from_str::<ParetoFront<Pick>>(&serde_json::to_string(&data).unwrap());
    assert!(err.unwrap_err().to_string().contains("does not improve"));
}

/// 300 items of assorted weights and values (a deterministic sequence, no RNG needed).
fn many_items() -> Vec<Item> {
    (0..300u64)
        .map(|i| {
            let weight = 1 + (i * 7919) % 97 + (i % 5) * 50;
            let value = 1.0 + ((i * 104_729) % 89) as f64 / 10.0;
            Item::new(weight, value)
        })
        .collect()
}

#[test]
fn a_front_is_written_as_steps_and_reads_back_every_selection() {
    let items = many_items();
    let front = pareto_front_with(&items, FrontOptions::new().with_epsilon(0.001)).unwrap();
    assert!(front.len() > 100, "{} points", front.len());
    let steps = serde_json::to_string(&front).unwrap();
    let value: serde_json::Value = serde_json::from_str(&steps).unwrap();
    assert!(value.get("points").is_none() && value["steps"].is_array());
    // Every point's selection comes back whole, and the front answers as before.
    let back: ParetoFront = serde_json::from_str(&steps).unwrap();
    assert_eq!(back.to_data(), front.to_data());
    assert_eq!(back.is_exact(), front.is_exact());
    assert_eq!(back.best_within(2_000), front.best_within(2_000));
    // The old form, every selection whole, reads as the same front, and is far longer.
    let whole = serde_json::to_string(&front.to_data()).unwrap();
    let from_whole: ParetoFront = serde_json::from_str(&whole).unwrap();
    assert_eq!(from_whole.to_data(), front.to_data());
    assert!(
        5 * steps.len() < whole.len(),
        "steps {} bytes, whole selections {}",
        steps.len(),
        whole.len()
    );
}

#[test]
fn steps_that_do_not_replay_are_refused() {
    let refused = |json: &str, words: &str| {
        let err = serde_json::from_str::<ParetoFront>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{json}: {err}");
    };
    let head = r#""epsilon":0.0,"exact":true,"max_weight":null"#;
    let ok = format!(
        r#"{{{head},"steps":[{{"weight":0,"value":0.0}},{{"weight":2,"value":1.0,"added":[4]}},{{"weight":3,"value":2.0,"added":[1],"removed":[4]}}]}}"#
    );
    let front: ParetoFront = serde_json::from_str(&ok).unwrap();
    assert_eq!(front.chosen(1), Some(vec![4]));
    assert_eq!(front.chosen(2), Some(vec![1]));
    refused(
        &ok.replace(r#""removed":[4]"#, r#""removed":[5]"#),
        "step 2 removes a choice",
    );
    refused(
        &ok.replace(r#""added":[1],"#, r#""added":[4],"#),
        "step 2 adds a choice",
    );
    refused(
        &ok.replace(r#""added":[4]"#, r#""added":[4,4]"#),
        "not strictly ascending",
    );
    refused(&format!("{{{head}}}"), "either `points` or `steps`");
    refused(
        &ok.replace(r#""steps":"#, r#""points":[],"steps":"#),
        "either `points` or `steps`",
    );
}
