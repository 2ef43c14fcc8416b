"""The template language the engine renders with. It is defined in `worker.settings.templates`,
where the configuration checks every template when it loads (settings never import the cadence,
the cadence imports settings); this module names it for the cadence."""

from worker.settings.templates import (
    CONTACT_ATTRS,
    DEAL_ATTRS,
    OWNER_ATTRS,
    ROOTS,
    STEP_ATTRS,
    StepView,
    TemplateProblem,
    check,
    compile_template,
    contact_view,
    deal_view,
    owner_view,
    render,
)

__all__ = ["CONTACT_ATTRS", "DEAL_ATTRS", "OWNER_ATTRS", "ROOTS", "STEP_ATTRS", "StepView",
           "TemplateProblem", "check", "compile_template", "contact_view", "deal_view",
           "owner_view", "render"]
