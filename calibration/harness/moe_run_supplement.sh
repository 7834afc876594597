#!/bin/bash
# Second device call: moe_routed (tokens already routed, combine without atomics) and the split-cache MLA decode.
D=$(dirname "$0")
L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,memory.used --format=csv > $L/supplement-nvidia-smi.txt
PYTHONUNBUFFERED=1 timeout 260 python3 $D/moe_mla.py --supplement --budget-s 220 --precompile-s 90 --workers 12 --out $L > $L/stdout.txt 2>&1
echo "moe_mla --supplement rc $?" >> $L/supplement-nvidia-smi.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,memory.used --format=csv >> $L/supplement-nvidia-smi.txt
for f in moe-routed.jsonl mla-decode-split.jsonl; do [ -f $L/$f ] && mv $L/$f $OUT/; done
rm -f $L/stdout.txt
tar -C $L -czf $OUT/supplement-logs.tar.gz .
tail -4 $L/moe-mla-supplement-log.txt; cat $L/supplement-nvidia-smi.txt
