"""Slack alerts: one message per new finding (a digest when a batch brings many),
routed by severity and source, sent through slack_sdk with its retry handlers.

    model.py     Alert: what a message says about one finding (redacted, never plaintext)
    routing.py   [alerts.slack] and [[alerts.routes]]: which destination gets an alert
    slack.py     Block Kit messages and sending; never raises into the caller
    dispatch.py  the store side: one AlertDelivery per finding and destination, retries
"""
