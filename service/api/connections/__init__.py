"""HTTP/1.1 connections a slow, idle or oversized client cannot hold, and how many
the server keeps."""
