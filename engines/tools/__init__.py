"""Tools for every engine: formats (how a family writes calls), parsers (reading calls from streamed text),
`tool_choice` enforced by decoding, and conversations with tools rendered for a chat template."""
