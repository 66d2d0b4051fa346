"""FireWorks workflows and campaigns (embedded LaunchPad by default, MongoDB at scale)."""
