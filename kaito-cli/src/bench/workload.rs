//! The prompts of each workload.

use serde_json::{json, Value};

use super::WorkloadKind;

const TOPICS: &[&str] = &[
    "a lighthouse keeper",
    "a lost robot",
    "the first snow",
    "a jazz trumpet",
    "an old map",
    "a night train",
    "a mountain village",
    "a clockmaker",
    "a river festival",
    "a desert well",
    "a paper boat",
    "a city garden",
    "a broken violin",
    "a winter market",
    "a kite contest",
    "a sleepy dragon",
];

/// A long, shared system prompt (a few hundred tokens), as a product's assistant would carry.
const SYSTEM_PROMPT: &str = "You are the assistant of Northwind Rail, a regional railway company. \
Follow these rules in every answer. Be concise and friendly. Answer in at most three sentences unless the \
traveller asks for detail. Never invent timetables, platforms or prices; when you are unsure, say so and point \
to the station desk or the website. Tickets: single, return, day pass and season tickets exist; children under \
six travel free; bicycles travel free outside rush hours (7-9 and 16-18 on weekdays); dogs need a half-price \
ticket unless they fit in a bag. Delays: travellers delayed more than 30 minutes can claim 25 percent of the \
fare back, more than 60 minutes 50 percent, using the form on the website within 28 days. Accessibility: every \
station has step-free access to at least one platform; ramps are available on request at least one hour before \
departure. Lost property is kept for 30 days at the central station. Food and drinks are allowed; alcohol is \
not allowed on late trains after 22:00. Wi-Fi is free on all trains. Quiet carriages are at both ends of long \
trains. If a traveller is rude, stay polite. If a traveller reports an emergency, tell them to press the red \
emergency button and call 112. Do not discuss topics unrelated to travel; politely steer back to the journey.";

const QUESTIONS: &[&str] = &[
    "Can I bring my bicycle at 8 in the morning?",
    "My train was 45 minutes late, what can I get back?",
    "Do children need a ticket?",
    "Is there Wi-Fi on board?",
    "Where do I find lost property?",
    "Can my dog travel with me?",
    "Is there step-free access at small stations?",
    "Can I drink beer on the train?",
    "What is a day pass?",
    "How long do I have to claim a refund?",
    "Where are the quiet carriages?",
    "What should I do in an emergency?",
    "Can I eat on the train?",
    "Do I need to book a ramp?",
];

/// Prompt generator.
pub struct Workload {
    kind: WorkloadKind,
}

impl Workload {
    /// For `kind`.
    pub fn new(kind: WorkloadKind) -> Self {
        Self { kind }
    }

    /// The messages of request `i` (the index within the whole run: no two requests of a run are alike).
    pub fn messages(&self, i: usize) -> Vec<Value> {
        match self.kind {
            WorkloadKind::Distinct => vec![json!({
                "role": "user",
                "content": format!("Write a short story (#{i}) about {}.", TOPICS[i % TOPICS.len()]),
            })],
            WorkloadKind::SharedPrefix => vec![
                json!({"role": "system", "content": SYSTEM_PROMPT}),
                json!({"role": "user", "content": format!("{} (ticket {i})", QUESTIONS[i % QUESTIONS.len()])}),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_requests_of_a_run_are_alike_and_shared_prefix_shares_the_system_prompt() {
        for kind in [WorkloadKind::Distinct, WorkloadKind::SharedPrefix] {
            let workload = Workload::new(kind);
            let all: std::collections::HashSet<String> = (0..200)
                .map(|i| serde_json::to_string(&workload.messages(i)).unwrap())
                .collect();
            assert_eq!(all.len(), 200, "{kind:?}");
        }
        let shared = Workload::new(WorkloadKind::SharedPrefix);
        assert_eq!(shared.messages(3)[0], shared.messages(150)[0]);
    }
}
