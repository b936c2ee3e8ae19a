"""The settlement engine: intake, pricing, allocation, distribution, exports."""
