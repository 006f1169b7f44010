"""Thin anywidget widgets over brewslm_core. Logic lives in the engine; widgets sync traits."""
