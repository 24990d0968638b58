"""What a run emits beyond the ledger: the ``diff`` JSON contract and text (:mod:`.diffout`),
Slack alerts decided from the drift lifecycle (:mod:`.alerts`) and delivered
(:mod:`.slack`), and Prometheus metrics (:mod:`.metrics`)."""
