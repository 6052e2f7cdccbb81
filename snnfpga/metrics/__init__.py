"""What a network costs, counted once: synaptic events and the event bound
(:mod:`.activity`), and the SC-TTFS paper's normalised energy (:mod:`.energy`)."""
