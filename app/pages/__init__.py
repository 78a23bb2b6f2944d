"""One builder per page: `build(cm)` lays the page out first and wires its events last."""
