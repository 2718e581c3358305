//! JSON round trips of the public data types (with the `serde` feature).
#![cfg(feature = "serde")]

use adapeft_knapsack::{
    Class, FrontData, FrontOptions, Item, ParetoFront, Pick, Solution, pareto_front,
    pareto_front_classes, solve,
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

    let mut data: FrontData<Pick> = serde_json::from_str(&json).unwrap();
    data.points.reverse();
    let err = serde_json::from_str::<ParetoFront<Pick>>(&serde_json::to_string(&data).unwrap());
    assert!(err.unwrap_err().to_string().contains("does not improve"));
}
