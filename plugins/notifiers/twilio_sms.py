"""The twilio_sms notifier (being written)."""
